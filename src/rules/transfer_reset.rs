//! `transfer-reset`: a message whose body was cut: the connection was reset, or closed, before
//! the body its headers announced (its `Content-Length`, or the last chunk) had gone through. A
//! blob download that fails half-way, an upload the server cut off. The finding says which side
//! ended it, how much of the body had gone through at what rate, and what the connection looked
//! like before: a receiver advertising a zero window (it stopped reading: a slow reader, a
//! stopped process), or silence (a dead peer, a middlebox that dropped the flow).
//!
//! Not for a message cut by the end of the capture, or one with bytes missing from the capture
//! (the cut may be the capture's), nor for an upload the server answered before its end (a 413
//! or 401 stopped it: other rules' findings), nor for one `mtu-blackhole` explains (its evidence
//! holds the close).
//!
//! The finding is made when the connection ends: at once for a reset, or when both sides have
//! closed; a connection whose peer never answers the closing side's FIN (a dead peer) ends when
//! the flow goes idle (5 minutes) or the capture ends.

use super::kit::{Waiting, exchange_parties, request_label, request_line, response_label, secs};
use super::{Interest, Rule, RuleInfo};
use crate::capture::TimestampNs;
use crate::finding::{Evidence, Finding, FindingDraft, Severity};
use crate::flow::Ending;
use crate::http::{Exchange, Message};
use std::net::SocketAddr;

pub static INFO: RuleInfo = RuleInfo {
    id: "transfer-reset",
    severity: Severity::Error,
    title: "A message body cut short: the connection was reset or closed mid-transfer",
    doc: include_str!("../../docs/rules/transfer-reset.md"),
    suppress_for_ns: Some(60_000_000_000),
    explained_by_others: true,
};

/// A cut exchange waits this long (capture time) for its connection's end.
const WAIT_NS: TimestampNs = 600_000_000_000;
/// Silence at least this long before the end is a stall worth naming.
const STALL_NS: TimestampNs = 1_000_000_000;

/// An exchange with a message cut short, waiting for how its connection ended.
#[derive(Debug)]
struct Cut {
    ex: Exchange,
    /// The response was cut (else the request: an upload).
    response: bool,
    ts: TimestampNs,
}

pub struct TransferReset {
    cuts: Waiting<Cut>,
}

impl Default for TransferReset {
    fn default() -> Self {
        TransferReset {
            cuts: Waiting::new(|c| c.ts.saturating_add(WAIT_NS)),
        }
    }
}

/// The body size a message's headers announce: `Some(n)` for a `Content-Length`, `None` for
/// chunked (sized by its last chunk).
fn announced(m: &Message) -> Option<u64> {
    m.header("content-length")
        .and_then(|v| std::str::from_utf8(v).ok())
        .and_then(|v| v.trim().parse().ok())
}

/// Whether `m` was cut in its body, with every byte up to the cut captured.
fn cut_in_body(m: &Message) -> bool {
    !m.complete
        && m.body.missing == 0
        && !m.anomalies.contains(&crate::http::Anomaly::BodyGap)
        && (announced(m).is_some()
            || m.header("transfer-encoding")
                .is_some_and(|v| v.eq_ignore_ascii_case(b"chunked")))
}

/// `2.3 s`, `45 s`, `3m 20s`.
fn duration(ns: TimestampNs) -> String {
    let s = ns as f64 / 1e9;
    if s < 10.0 {
        format!("{s:.1} s")
    } else if s < 120.0 {
        format!("{s:.0} s")
    } else {
        super::kit::human_duration(ns / 1_000_000_000)
    }
}

fn bytes(n: u64) -> String {
    if n >= 10 << 20 {
        format!("{:.1} MiB", n as f64 / (1 << 20) as f64)
    } else if n >= 10 << 10 {
        format!("{:.1} KiB", n as f64 / 1024.0)
    } else {
        format!("{n} bytes")
    }
}

impl TransferReset {
    fn report(c: &Cut, e: &Ending, out: &mut Vec<Finding>) {
        let Some((closer, frame, end_ts, rst)) = e.first_close() else {
            return; // neither side closed: the capture (or an idle timeout) ended the flow
        };
        let (Some(req), Some(msg)) = (
            c.ex.request.as_ref(),
            if c.response {
                c.ex.response.as_ref()
            } else {
                c.ex.request.as_ref()
            },
        ) else {
            return;
        };
        let (sender, receiver) = if c.response {
            (c.ex.server, c.ex.client)
        } else {
            (c.ex.client, c.ex.server)
        };
        let who = |a: SocketAddr| {
            if a == c.ex.server {
                format!("the server {a}")
            } else {
                format!("the client {a}")
            }
        };
        let how = if rst {
            format!("reset the connection (RST, frame {frame})")
        } else {
            format!("closed the connection (FIN, frame {frame})")
        };
        let got = msg.body.length;
        let of = match announced(msg) {
            Some(n) => format!(
                "{} of the {} announced ({:.0} %)",
                bytes(got),
                bytes(n),
                got as f64 * 100.0 / n.max(1) as f64
            ),
            None => format!("{} (chunked, its last chunk never came)", bytes(got)),
        };
        let sender_side = e.side(sender).copied().unwrap_or_default();
        let receiver_side = e.side(receiver).copied().unwrap_or_default();
        let last_data = sender_side.last_data_ts.unwrap_or(msg.end_ts);
        let span = last_data.saturating_sub(msg.first_ts).max(1);
        let rate = got as f64 / (span as f64 / 1e9);
        let stall = end_ts.saturating_sub(last_data);
        let slow_reader = receiver_side
            .zero_window_since
            .filter(|z| *z <= end_ts)
            .map(|z| end_ts.saturating_sub(z));
        let what = if c.response {
            "answer to"
        } else {
            "request body of"
        };
        let mut detail = format!(
            "{} was sending {} the {} {} {} (frame {}): {of} had gone through, at {}/s, when {} {how}.",
            who(sender),
            who(receiver),
            msg.status()
                .map(|s| s.to_string())
                .unwrap_or_else(|| req.method().unwrap_or("?").to_string()),
            what,
            request_line(req, 80),
            msg.first_frame,
            bytes(rate as u64),
            who(closer),
        );
        if let Some(first) = detail.get(..1) {
            detail.replace_range(..1, &first.to_uppercase());
        }
        let pattern = match slow_reader {
            Some(z) => {
                detail.push_str(&format!(
                    " For {} before that, {} had been advertising a zero window: its receive buffer was full because the \
                     program behind it had stopped reading (a slow or stalled reader: a stopped process, a full disk, a proxy \
                     buffering to a slow next hop).",
                    duration(z),
                    who(receiver)
                ));
                if closer == sender {
                    " The sender gave up waiting for it: a send timeout (nginx `send_timeout`, 60 s by default; with \
                     `reset_timedout_connection on` it resets)."
                } else {
                    ""
                }
            }
            None if stall >= STALL_NS => {
                detail.push_str(&format!(
                    " For {} before that, {} had sent nothing, and {} was not blocking it (no zero window): silence, a dead \
                     or hung peer, or a middlebox (a firewall, NAT or load balancer) that dropped the flow.",
                    duration(stall),
                    who(sender),
                    who(receiver)
                ));
                if closer == receiver {
                    " The receiver gave up: a read or idle timeout (curl `--speed-time`, a client's idle timeout, a \
                     proxy's `proxy_read_timeout`)."
                } else {
                    ""
                }
            }
            None => {
                detail.push_str(" Data was still flowing: the connection was cut while the transfer was going on.");
                ""
            }
        };
        detail.push_str(pattern);
        let remediation = match (slow_reader.is_some(), closer == sender, stall >= STALL_NS) {
            (true, true, _) => format!(
                "Find why {} stopped reading (its CPU, disk, or the next hop it writes to), and give it time: raise the \
                 sender's send timeout (nginx `send_timeout`, or `proxy_send_timeout`/`proxy_read_timeout` on a proxy in \
                 between) above the longest stall a slow client has, or stream to the client without buffering \
                 (`proxy_buffering off`).",
                who(receiver)
            ),
            (true, false, _) => format!(
                "{} ended the transfer while its own buffer was full: it stopped reading, then gave up (a client timeout, \
                 a cancelled pull). Find what blocked it (CPU, disk, the next hop), or raise its timeout.",
                who(receiver)
            ),
            (false, _, true) if closer == receiver => format!(
                "Find why {} went silent for {}: the registry waiting on its storage (a slow S3 read), a hung process, or a \
                 middlebox that dropped the flow (an idle timeout on a load balancer or NAT, shorter than the stall); capture \
                 on the sender's side to see whether it sent at all. Raise the idle timeouts on the path above the longest \
                 storage stall, or the client's read timeout.",
                who(sender),
                duration(stall)
            ),
            (false, _, true) => format!(
                "{} ended the connection after {} of silence: an idle or read timeout there (nginx `proxy_read_timeout`, \
                 a load balancer's idle timeout) shorter than the stall; raise it, and find what stalled the transfer.",
                who(closer),
                duration(stall)
            ),
            _ => format!(
                "{} cut the connection while data was flowing: look at its logs for the reason (a proxy's \
                 `upstream prematurely closed connection`, a restart, an out-of-memory kill, a body size limit), and at a \
                 load balancer or firewall in between that might send resets.",
                who(closer)
            ),
        };
        let (client, server) = exchange_parties(&c.ex);
        let ends = |from: SocketAddr| {
            if from == c.ex.client {
                (client, server)
            } else {
                (server, client)
            }
        };
        let mut evidence = vec![Evidence::packet(
            req.frame,
            Some(c.ex.stream),
            (client, server),
            req.frame_ts(),
            format!(
                "request: {} ({} → {})",
                request_line(req, 80),
                c.ex.client,
                c.ex.server
            ),
            request_label(req),
        )];
        if c.response {
            evidence.push(Evidence::packet(
                msg.first_frame,
                Some(c.ex.stream),
                (server, client),
                msg.first_ts,
                format!(
                    "response (cut short) begins: {} {}",
                    msg.status().unwrap_or(0),
                    crate::text::lossless(msg.reason().unwrap_or_default())
                ),
                response_label(msg),
            ));
        }
        evidence.push(Evidence::packet(
            msg.last_frame,
            Some(c.ex.stream),
            ends(sender),
            msg.last_ts,
            format!(
                "last body bytes before it was cut short ({} in all)",
                bytes(got)
            ),
            format!("last body bytes ({})", bytes(got)),
        ));
        evidence.push(Evidence::packet(
            frame,
            Some(c.ex.stream),
            ends(closer),
            end_ts,
            format!("{} from {}", if rst { "RST" } else { "FIN" }, closer),
            if rst { "RST" } else { "FIN" },
        ));
        out.push(
            FindingDraft {
                rule: INFO.id,
                severity: INFO.severity,
                key_frame: frame,
                evidence,
                title: format!(
                    "{} cut short: {} {} at {}",
                    if c.response { "Download" } else { "Upload" },
                    who(closer),
                    if rst {
                        "reset the connection"
                    } else {
                        "closed the connection"
                    },
                    of
                ),
                detail,
                remediation,
                time: secs(msg.first_ts),
                identifier: Some(format!("{} {}", c.ex.client.ip(), c.ex.server)),
            }
            .build(),
        );
    }
}

impl Rule for TransferReset {
    fn info(&self) -> &'static RuleInfo {
        &INFO
    }

    fn interest(&self) -> Interest {
        Interest::CUT | Interest::CUT_SHORT
    }

    fn on_exchange(&mut self, ex: &Exchange, _out: &mut Vec<Finding>) {
        let response = if ex.response.as_ref().is_some_and(|r| cut_in_body(r)) {
            true
        } else if ex.response.is_none() && ex.request.as_ref().is_some_and(|r| cut_in_body(r)) {
            // An upload the server answered before its end (a 413, a 401) was stopped by that
            // answer, not cut.
            false
        } else {
            return;
        };
        self.cuts.push(Cut {
            ex: ex.clone(),
            response,
            ts: ex.ended_ts,
        });
    }

    fn on_cut_short(&mut self, e: &Ending, out: &mut Vec<Finding>) {
        while let Some(i) = self.cuts.iter().position(|c| c.ex.stream == e.stream) {
            if let Some(c) = self.cuts.remove(i) {
                Self::report(&c, e, out);
            }
        }
    }

    fn next_deadline(&self) -> Option<TimestampNs> {
        self.cuts.next()
    }

    fn on_tick(&mut self, now: TimestampNs, _out: &mut Vec<Finding>) {
        // A cut whose connection never ended in the capture (an idle flow evicted first).
        self.cuts.take_due(now);
    }

    fn state_dropped(&self) -> u64 {
        self.cuts.dropped()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::flow::EndSide;
    use crate::rules::testing::exchange;

    const S: TimestampNs = 1_000_000_000;

    fn cut_download(r: &mut TransferReset) {
        let ex = exchange(
            "10.0.0.1:40000",
            "10.0.0.2:5000",
            3,
            4,
            100,
            b"GET /v2/a/blobs/sha256:ab HTTP/1.1\r\nHost: r\r\n\r\n",
            b"HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n0123456789",
        );
        r.on_exchange(&ex, &mut Vec::new());
    }

    fn ending(client: EndSide, server: EndSide) -> Ending {
        Ending {
            stream: 3,
            ends: [
                "10.0.0.1:40000".parse().unwrap_or_else(|_| unreachable!()),
                "10.0.0.2:5000".parse().unwrap_or_else(|_| unreachable!()),
            ],
            sides: [client, server],
        }
    }

    #[test]
    fn a_server_reset_after_the_client_stopped_reading() {
        let mut r = TransferReset::default();
        cut_download(&mut r);
        let mut out = Vec::new();
        let client = EndSide {
            zero_window_since: Some(101 * S),
            ..EndSide::default()
        };
        let server = EndSide {
            rst: Some((40, 103 * S)),
            last_data_ts: Some(100 * S),
            ..EndSide::default()
        };
        r.on_cut_short(&ending(client, server), &mut out);
        assert_eq!(out.len(), 1);
        let f = &out[0];
        assert_eq!(f.key_frame, 40);
        assert!(
            f.detail
                .contains("10 bytes of the 1000 bytes announced (1 %)"),
            "{}",
            f.detail
        );
        assert!(
            f.detail.contains("For 2.0 s before that, the client"),
            "{}",
            f.detail
        );
        assert!(
            f.remediation.starts_with("Find why the client"),
            "{}",
            f.remediation
        );
    }

    #[test]
    fn a_client_giving_up_on_silence_and_a_capture_that_just_ended() {
        let mut r = TransferReset::default();
        cut_download(&mut r);
        let mut out = Vec::new();
        // Neither side closed: the capture ended mid-transfer.
        r.on_cut_short(&ending(EndSide::default(), EndSide::default()), &mut out);
        assert!(out.is_empty());
        cut_download(&mut r);
        let client = EndSide {
            fin: Some((50, 110 * S)),
            ..EndSide::default()
        };
        let server = EndSide {
            last_data_ts: Some(100 * S),
            ..EndSide::default()
        };
        r.on_cut_short(&ending(client, server), &mut out);
        assert_eq!(out.len(), 1);
        assert!(
            out[0].detail.contains("For 10 s before that, the server"),
            "{}",
            out[0].detail
        );
        assert!(
            out[0].detail.contains("The receiver gave up"),
            "{}",
            out[0].detail
        );
    }
}
