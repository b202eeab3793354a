//! `mtu-blackhole`: a path MTU black hole. The handshake, requests and small segments pass,
//! but one side's full-size segments never reach the other: a link on the path has a smaller
//! MTU (an overlay, a tunnel, PPPoE) and the ICMP "fragmentation needed" (ICMPv6 "packet too
//! big") that should tell the sender is dropped, so the sender retransmits the same full-size
//! segment with doubling gaps until someone gives up. Go reports `net/http: TLS handshake
//! timeout` when it is the server's certificate flight; a download just hangs.
//!
//! Seen from the sender's side, the segment at the head of the line is retransmitted at full
//! size at least twice and never acknowledged, while every segment of the sender's that got
//! through was smaller and the receiver is there (it spoke just before, or answers with
//! duplicate ACKs). When the sender then succeeds with smaller segments (Linux with
//! `net.ipv4.tcp_mtu_probing`), the finding is a warning: it recovered, late. Seen from the
//! receiver's side, bytes the sender sent (its later sequence numbers show them) never arrive,
//! the receiver never acknowledges them, no full-size segment from the sender ever arrived,
//! and at least a second passed. A full-size segment acknowledged at full size is loss, not a
//! size the path refuses, and is not reported.

use super::kit::secs;
use super::{Interest, Rule, RuleInfo};
use crate::capture::TimestampNs;
use crate::finding::{Evidence, Finding, FindingDraft, Party, Severity};
use crate::flow::Stall;
use crate::flow::stall::{Seen, Sent};

pub static INFO: RuleInfo = RuleInfo {
    id: "mtu-blackhole",
    severity: Severity::Error,
    title: "Path MTU black hole: full-size segments retransmitted and never acknowledged",
    doc: include_str!("../../docs/rules/mtu-blackhole.md"),
    suppress_for_ns: Some(60_000_000_000),
    explained_by_others: false,
};

/// The smallest segment that stands for "full-size": 536 bytes, TCP's default MSS (RFC 879,
/// the payload of IPv4's minimum 576-byte datagram). Below it are the sizes of requests and
/// small answers, which pass any path.
const MIN_FULL: u32 = 536;
/// Option bytes a full-size segment may carry within the MSS (timestamps take 12; 40 at most).
const OPTIONS: u32 = 40;
/// The receiver counts as present when it spoke this shortly before the data was first sent.
const RECENT_NS: TimestampNs = 10_000_000_000;
/// At the receiver's side, missing bytes count once this long passed without them: several
/// retransmission timeouts (200 ms and up on Linux, 1 s by RFC 6298).
const WAITED_NS: TimestampNs = 1_000_000_000;

#[derive(Default)]
pub struct MtuBlackhole;

/// The packet `p` of the stalled connection `s` as evidence, sent by the data's sender
/// (`from_sender`) or by its receiver.
fn at(what: String, label: impl Into<String>, p: Sent, s: &Stall, from_sender: bool) -> Evidence {
    let (sender, receiver) = parties(s);
    let ends = if from_sender {
        (sender, receiver)
    } else {
        (receiver, sender)
    };
    Evidence::packet(p.frame, Some(s.stream), ends, p.ts, what, label)
}

/// The stalled connection's two ends: the side whose data does not get through, and the other.
fn parties(s: &Stall) -> (Party, Party) {
    let party = |a: std::net::SocketAddr, role| Party {
        ip: a.ip(),
        port: Some(a.port()),
        role,
    };
    (party(s.sender, "sender"), party(s.receiver, "receiver"))
}

/// `2.3 s`, `45 s`.
fn span(ns: TimestampNs) -> String {
    let s = ns as f64 / 1e9;
    if s < 10.0 {
        format!("{s:.1} s")
    } else {
        format!("{s:.0} s")
    }
}

/// The MSS evidence and the words for it.
fn mss_part(s: &Stall, ev: &mut Vec<Evidence>) -> String {
    let mut words = Vec::new();
    for (who, addr, mss) in [
        ("sender", s.sender, s.sender_mss),
        ("receiver", s.receiver, s.receiver_mss),
    ] {
        if let Some((frame, m)) = mss {
            let (sender, receiver) = parties(s);
            ev.push(Evidence::packet(
                frame,
                Some(s.stream),
                if who == "sender" {
                    (sender, receiver)
                } else {
                    (receiver, sender)
                },
                None,
                format!("SYN of the {who} {addr}: MSS {m}"),
                format!("SYN, MSS {m}"),
            ));
            words.push(format!("the {who} announced an MSS of {m} (frame {frame})"));
        }
    }
    if words.is_empty() {
        "The SYNs were not captured, so the MSS each side announced is not known.".into()
    } else {
        let both_large = [s.sender_mss, s.receiver_mss]
            .iter()
            .flatten()
            .all(|(_, m)| *m >= 1400);
        format!(
            "In the handshake {}{}",
            words.join(" and "),
            if both_large {
                ": both ends believe in a path of about 1500 bytes (1460 is a 1500-byte MTU), \
                 which the path does not have."
            } else {
                "."
            }
        )
    }
}

/// The receiver's first packets while the data was missing (its close is shown as that), as
/// evidence: `TCP packet from RECEIVER <what>`.
fn waiting_part(s: &Stall, what: &str, ev: &mut Vec<Evidence>) {
    for w in s
        .receiver_waiting
        .kept
        .iter()
        .filter(|w| !is_close(s, w.frame))
        .take(3)
    {
        ev.push(at(
            format!("TCP packet from {} {what}", s.receiver),
            "ACK (still waiting)",
            *w,
            s,
            false,
        ));
    }
}

/// Whether frame `f` is either side's first FIN or RST (shown as that, not again as a packet
/// that waits).
fn is_close(s: &Stall, f: u64) -> bool {
    [s.sender_closed, s.receiver_closed]
        .iter()
        .flatten()
        .any(|(c, _, _)| *c == f)
}

/// The connection's first FIN or RST after `start`, as evidence and words ("the receiver
/// closed the connection (FIN, frame 17, 10 s after)").
fn close_part(s: &Stall, start: Sent, ev: &mut Vec<Evidence>) -> Option<String> {
    let (who, addr, (frame, ts, rst)) = [
        ("sender", s.sender, s.sender_closed),
        ("receiver", s.receiver, s.receiver_closed),
    ]
    .into_iter()
    .filter_map(|(w, a, c)| c.map(|c| (w, a, c)))
    .filter(|(_, _, (f, _, _))| *f > start.frame)
    .min_by_key(|(_, _, (f, _, _))| *f)?;
    let how = if rst { "RST" } else { "FIN" };
    ev.push(at(
        format!("{how} from the {who} {addr}: it gives up"),
        how,
        Sent { frame, ts, len: 0 },
        s,
        who == "sender",
    ));
    Some(format!(
        "the {who} closed the connection ({how}, frame {frame}, {} after)",
        span(ts.saturating_sub(start.ts))
    ))
}

const REMEDY: &str = "Make the path's MTU known to the ends, or the ends' sizes fit the path. \
    (1) Set the MTU of the overlay or CNI to what the underlay carries minus its encapsulation \
    (VXLAN 50 bytes: 1450 on a 1500 underlay; WireGuard 60-80; IPsec more), and the daemons' \
    too: docker `\"mtu\": 1450` in `/etc/docker/daemon.json` (and the network's \
    `com.docker.network.driver.mtu`), the CNI's `mtu` (Calico `veth_mtu`, Flannel, Cilium \
    `--mtu`). (2) Clamp the MSS where the path narrows: `iptables -t mangle -A FORWARD -p tcp \
    --tcp-flags SYN,RST SYN -j TCPMSS --clamp-mss-to-pmtu` (nftables: `tcp flags syn tcp \
    option maxseg size set rt mtu`). (3) Let ICMP type 3 code 4 (and ICMPv6 type 2) through \
    every firewall and security group on the path, so that path MTU discovery works. As a \
    stopgap, Linux hosts can probe for the size themselves: `sysctl -w \
    net.ipv4.tcp_mtu_probing=1`. Verify: `ping -M do -s 1472 <peer>` fails where the path is \
    smaller than 1500 (lower -s until it passes: that plus 28 is the path MTU), and the \
    transfer completes with segments no larger than it.";

impl MtuBlackhole {
    fn at_sender(&self, s: &Stall, out: &mut Vec<Finding>) {
        let Seen::AtSender {
            first,
            retransmissions,
            smaller,
            acked,
        } = &s.seen
        else {
            return;
        };
        let Some(r1) = retransmissions.kept.first().copied() else {
            return;
        };
        let size = r1.len;
        let through = s.largest_through.map_or(0, |t| t.len);
        let start = first.unwrap_or(r1);
        let receiver_there = s.receiver_waiting.count > 0
            || s.receiver_before
                .is_some_and(|b| start.ts.saturating_sub(b.ts) <= RECENT_NS);
        let recovered = match (acked, smaller) {
            (None, _) => None,
            (Some(a), Some(sm)) if sm.frame < a.frame => Some((*sm, *a)),
            // Acknowledged at full size: loss, not a size the path refuses.
            (Some(_), _) => return,
        };
        if retransmissions.count < 2 || size < MIN_FULL || through >= size || !receiver_there {
            return;
        }
        let last_full = retransmissions.kept.last().copied().unwrap_or(r1);
        let stream = s.stream;
        let mut ev = Vec::new();
        let shown = match first {
            Some(f) => {
                ev.push(at(
                    format!(
                        "TCP segment, full size ({} bytes), from {} to {}: never acknowledged",
                        f.len, s.sender, s.receiver
                    ),
                    format!("{} bytes, never ACKed", f.len),
                    *f,
                    s,
                    true,
                ));
                if f.len > size + OPTIONS {
                    format!(
                        " (first sent as {} bytes, more than the MSS: the sender's network card \
                         splits it, TSO; the capture was taken on the sender's host)",
                        f.len
                    )
                } else {
                    String::new()
                }
            }
            None => String::new(),
        };
        for (i, r) in retransmissions.kept.iter().enumerate() {
            ev.push(at(
                format!(
                    "TCP retransmission {} of it ({} bytes, {} after the first)",
                    i + 1,
                    r.len,
                    span(r.ts.saturating_sub(start.ts))
                ),
                format!("retransmission #{} ({} bytes)", i + 1, r.len),
                *r,
                s,
                true,
            ));
        }
        waiting_part(
            s,
            "acknowledging only the bytes before it: there, and waiting",
            &mut ev,
        );
        if let Some(b) = s.receiver_before {
            ev.push(at(
                format!(
                    "TCP packet from {}, its last before: small packets pass",
                    s.receiver
                ),
                format!("{} bytes (last before)", b.len),
                b,
                s,
                false,
            ));
        }
        if let Some(t) = s.largest_through {
            ev.push(at(
                format!(
                    "TCP segment: the largest of {}'s known to have got through ({} bytes)",
                    s.sender, t.len
                ),
                format!("{} bytes (got through)", t.len),
                t,
                s,
                true,
            ));
        }
        let mss = mss_part(s, &mut ev);
        let more = retransmissions
            .count
            .saturating_sub(retransmissions.kept.len() as u64);
        let tried = format!(
            "retransmitted {} time{} at that size over {}",
            retransmissions.count,
            if retransmissions.count == 1 { "" } else { "s" },
            span(last_full.ts.saturating_sub(start.ts)),
        );
        let tries = if more > 0 {
            format!("{tried} ({more} not listed)")
        } else {
            tried.clone()
        };
        let through_words = match s.largest_through {
            Some(t) if t.len > 0 => format!(
                "every segment of its that got through was smaller (the largest, {} bytes, frame {})",
                t.len, t.frame
            ),
            _ => "none of its data had got through before".to_string(),
        };
        let icmp_words = match s.icmp {
            Some((i, mtu)) if i.frame < last_full.frame => {
                let mut e = Evidence::note(
                    i.frame,
                    Some(stream),
                    format!(
                        "ICMP fragmentation needed / packet too big about {}'s packets{}",
                        s.sender,
                        mtu.map(|m| format!(" (MTU {m})")).unwrap_or_default()
                    ),
                );
                e.time = Some(i.ts);
                e.label = format!(
                    "ICMP too big{}",
                    mtu.map(|m| format!(" (MTU {m})")).unwrap_or_default()
                );
                ev.push(e);
                format!(
                    " An ICMP \"fragmentation needed\" about its packets did reach the capture point \
                     (frame {}{}), yet the sender went on at full size: something between the capture \
                     point and the sender's TCP drops it (a host firewall that drops ICMP), or the \
                     MTU it announces is not below the segment.",
                    i.frame,
                    mtu.map(|m| format!(", MTU {m}")).unwrap_or_default()
                )
            }
            _ => " No ICMP \"fragmentation needed\" (ICMPv6 \"packet too big\") about its packets \
                  was captured: whatever drops the segment does not tell the sender (a link with \
                  a smaller MTU whose router's ICMP is filtered, or a device that drops instead of \
                  answering)."
                .to_string(),
        };
        let (severity, title, outcome) = match recovered {
            None => (
                Severity::Error,
                format!(
                    "Path MTU black hole: {}'s {size}-byte segments to {} never arrive ({})",
                    s.sender, s.receiver, tried
                ),
                match close_part(s, start, &mut ev) {
                    Some(c) => {
                        format!("It was never acknowledged: the transfer stalled there until {c}.")
                    }
                    None => format!(
                        "It was never acknowledged: the transfer stalled there until the capture's \
                         last packet of the connection (frame {}).",
                        s.last.frame
                    ),
                },
            ),
            Some((sm, a)) => {
                ev.push(at(
                    format!(
                        "TCP retransmission, smaller ({} bytes): the sender probing a smaller segment size",
                        sm.len
                    ),
                    format!("retransmission, smaller ({} bytes)", sm.len),
                    sm,
                    s,
                    true,
                ));
                ev.push(at(
                    format!(
                        "TCP ACK from {} of the smaller segment: it got through",
                        s.receiver
                    ),
                    "ACK of it",
                    a,
                    s,
                    false,
                ));
                (
                    Severity::Warning,
                    format!(
                        "Path MTU black hole: {}'s {size}-byte segments to {} never arrived; it got \
                         through {} later with {}-byte segments",
                        s.sender,
                        s.receiver,
                        span(a.ts.saturating_sub(start.ts)),
                        sm.len
                    ),
                    format!(
                        "The sender then tried a smaller segment ({} bytes, frame {}), which got \
                         through (acknowledged in frame {}, {} after the first try): its own MTU \
                         probing (Linux `net.ipv4.tcp_mtu_probing`) found a size the path carries. \
                         The transfer recovered, late; every new connection pays the same delay.",
                        sm.len,
                        sm.frame,
                        a.frame,
                        span(a.ts.saturating_sub(start.ts))
                    ),
                )
            }
        };
        let detail = format!(
            "{sender} sent a full-size segment of {size} bytes{shown} (frame {key}) and {tries}; \
             {receiver} never acknowledged it, though {through_words} and {receiver} was there \
             (it spoke just before{dups}). Small packets pass the path, full-size ones do not: a \
             link on the path has a smaller MTU than the ends believe (an overlay, a tunnel, \
             PPPoE), so that segments of {size} bytes of TCP payload do not fit{fit}.{icmp_words} \
             {outcome} \
             {mss} Clients report it as a timeout: Go's `net/http: TLS handshake timeout` when \
             the data is a server's certificate flight, a hung download otherwise. The capture was taken on the sender's side of the loss: it shows the segment \
             leaving again and again. A capture at the receiver would show bytes missing \
             (Wireshark's \"previous segment not captured\") and duplicate ACKs; one at each \
             hop finds the link that drops it.",
            sender = s.sender,
            receiver = s.receiver,
            key = start.frame,
            fit = if through > 0 {
                format!(" while {through} bytes did")
            } else {
                String::new()
            },
            dups = if s.receiver_waiting.count > 0 {
                format!(
                    ", and {} packet{} after it acknowledging only the bytes before it",
                    s.receiver_waiting.count,
                    if s.receiver_waiting.count == 1 {
                        ""
                    } else {
                        "s"
                    }
                )
            } else {
                String::new()
            },
        );
        out.push(
            FindingDraft {
                rule: INFO.id,
                severity,
                key_frame: start.frame,
                evidence: ev,
                title,
                detail,
                remediation: REMEDY.to_string(),
                time: secs(start.ts),
                identifier: Some(format!("{} {}", s.sender, s.receiver.ip())),
            }
            .build(),
        );
    }

    fn at_receiver(&self, s: &Stall, out: &mut Vec<Finding>) {
        let Seen::AtReceiver {
            before,
            after,
            hole_bytes,
        } = &s.seen
        else {
            return;
        };
        // The sender's segments are at most the receiver's MSS (less options).
        let Some((_, mss)) = s.receiver_mss else {
            return;
        };
        let mss = u32::from(mss);
        let largest = s.largest_through.map_or(0, |t| t.len);
        let waited = s.last.ts.saturating_sub(before.ts);
        if largest + OPTIONS >= mss
            || hole_bytes + OPTIONS < mss
            || mss < MIN_FULL
            || waited < WAITED_NS
            || s.receiver_waiting.count == 0
        {
            return;
        }
        let mut ev = vec![
            at(
                format!(
                    "TCP packet from {}, its last before the missing bytes",
                    s.sender
                ),
                format!("{} bytes (last before)", before.len),
                *before,
                s,
                true,
            ),
            at(
                format!(
                    "TCP previous segment not captured: {hole_bytes} bytes {} sent before this never arrived",
                    s.sender
                ),
                format!("{} bytes after {hole_bytes} missing", after.len),
                *after,
                s,
                true,
            ),
        ];
        waiting_part(
            s,
            "acknowledging only the bytes before the missing ones: it never got them",
            &mut ev,
        );
        if let Some(t) = s
            .largest_through
            .filter(|t| t.len > 0 && t.frame != after.frame)
        {
            ev.push(at(
                format!(
                    "TCP segment: the largest of {}'s that arrived ({} bytes)",
                    s.sender, t.len
                ),
                format!("{} bytes (arrived)", t.len),
                t,
                s,
                true,
            ));
        }
        let mss_words = mss_part(s, &mut ev);
        let closed = close_part(s, *before, &mut ev)
            .map(|c| format!(" In the end {c}."))
            .unwrap_or_default();
        let arrived = match s.largest_through.filter(|t| t.len > 0) {
            Some(t) => format!(
                "the segments of its that did arrive were all small (the largest {} bytes, frame {})",
                t.len, t.frame
            ),
            None => "only its packets without data arrived".to_string(),
        };
        let detail = format!(
            "{sender} sent {hole_bytes} bytes to {receiver} that never arrived: its packet in \
             frame {af} comes after them (Wireshark: \"previous segment not captured\"), and \
             {receiver} went on acknowledging only the bytes before them for {waited} (frame \
             {w1}), long enough for several retransmissions, none of which arrived. Meanwhile \
             {arrived}, while {receiver} invited segments of up to {mss} bytes. Small packets pass \
             the path, full-size ones do not: a link on the path has a smaller MTU than the ends \
             believe (an overlay, a tunnel, PPPoE) and the ICMP that should tell {sender} is lost \
             or filtered.{closed} {mss_words} The capture was taken on the receiver's side of the loss: \
             it cannot show the full-size segments themselves, only that they never came; a \
             capture at {sender} shows them retransmitted again and again.",
            sender = s.sender,
            receiver = s.receiver,
            af = after.frame,
            waited = span(waited),
            w1 = s.receiver_waiting.kept.first().map_or(0, |w| w.frame),
        );
        out.push(
            FindingDraft {
                rule: INFO.id,
                severity: Severity::Error,
                key_frame: after.frame,
                evidence: ev,
                title: format!(
                    "Path MTU black hole: {hole_bytes} bytes from {} never reached {} (no full-size segment arrived)",
                    s.sender, s.receiver
                ),
                detail,
                remediation: REMEDY.to_string(),
                time: secs(after.ts),
                identifier: Some(format!("{} {}", s.sender, s.receiver.ip())),
            }
            .build(),
        );
    }
}

impl Rule for MtuBlackhole {
    fn info(&self) -> &'static RuleInfo {
        &INFO
    }

    fn interest(&self) -> Interest {
        Interest::STALL
    }

    fn on_stall(&mut self, s: &Stall, out: &mut Vec<Finding>) {
        match s.seen {
            Seen::AtSender { .. } => self.at_sender(s, out),
            Seen::AtReceiver { .. } => self.at_receiver(s, out),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::flow::stall::Frames;

    fn sent(frame: u64, secs: f64, len: u32) -> Sent {
        Sent {
            frame,
            ts: (secs * 1e9) as TimestampNs,
            len,
        }
    }

    /// The server-side black hole of `samples/mtu/http-black-hole-server-side.pcap`, reduced:
    /// the request at 4, the segment at 6, retransmitted at 7, 8, 9.
    fn at_sender() -> Stall {
        Stall {
            stream: 0,
            sender: "10.88.2.2:8080".parse().unwrap_or_else(|_| unreachable!()),
            receiver: "10.88.1.1:40000".parse().unwrap_or_else(|_| unreachable!()),
            seen: Seen::AtSender {
                first: Some(sent(6, 0.0, 1448)),
                retransmissions: Frames {
                    kept: vec![sent(7, 0.2, 1448), sent(8, 0.6, 1448), sent(9, 1.4, 1448)],
                    count: 3,
                },
                smaller: None,
                acked: None,
            },
            sender_mss: Some((2, 1460)),
            receiver_mss: Some((1, 1460)),
            largest_through: None,
            receiver_waiting: Frames::default(),
            receiver_before: Some(sent(4, 0.0, 82)),
            icmp: None,
            last: sent(10, 8.0, 0),
            sender_closed: None,
            receiver_closed: Some((10, (8.0 * 1e9) as TimestampNs, false)),
        }
    }

    fn run(s: &Stall) -> Vec<Finding> {
        let mut out = Vec::new();
        MtuBlackhole.on_stall(s, &mut out);
        out
    }

    #[test]
    fn the_black_hole_is_named_with_its_retransmissions() {
        let f = run(&at_sender());
        assert_eq!(f.len(), 1);
        assert_eq!((f[0].severity, f[0].key_frame), (Severity::Error, 6));
        assert_eq!(f[0].frames, vec![1, 2, 4, 6, 7, 8, 9, 10]);
        assert!(f[0].detail.contains("No ICMP"), "{}", f[0].detail);
    }

    #[test]
    fn a_segment_of_that_size_through_before_is_loss_not_a_black_hole() {
        let mut s = at_sender();
        s.largest_through = Some(sent(3, 0.0, 1448));
        assert!(run(&s).is_empty());
    }

    #[test]
    fn a_receiver_not_heard_from_is_not_a_path_that_drops_big_packets() {
        let mut s = at_sender();
        s.receiver_before = Some(sent(4, -30.0, 82));
        assert!(run(&s).is_empty());
        // Its duplicate ACKs would say it is there.
        s.receiver_waiting = Frames {
            kept: vec![sent(7, 0.01, 0)],
            count: 1,
        };
        assert_eq!(run(&s).len(), 1);
    }

    #[test]
    fn acknowledged_at_full_size_is_loss() {
        let mut s = at_sender();
        if let Seen::AtSender { acked, .. } = &mut s.seen {
            *acked = Some(sent(11, 3.0, 0));
        }
        assert!(run(&s).is_empty());
    }

    #[test]
    fn an_icmp_that_reached_the_capture_point_is_said_and_shown() {
        let mut s = at_sender();
        s.icmp = Some((sent(5, 0.001, 0), Some(1450)));
        let f = run(&s);
        assert_eq!(f.len(), 1);
        assert!(f[0].frames.contains(&5));
        assert!(f[0].detail.contains("did reach the capture point"));
    }

    #[test]
    fn at_the_receiver_the_mss_is_needed() {
        let s = Stall {
            seen: Seen::AtReceiver {
                before: sent(5, 0.0, 0),
                after: sent(7, 8.0, 0),
                hole_bytes: 15928,
            },
            receiver_waiting: Frames {
                kept: vec![sent(6, 8.0, 0)],
                count: 1,
            },
            ..at_sender()
        };
        assert_eq!(run(&s).len(), 1);
        let unknown = Stall {
            receiver_mss: None,
            ..s.clone()
        };
        assert!(run(&unknown).is_empty());
        // A full-size segment did arrive: not a path that refuses them.
        let big = Stall {
            largest_through: Some(sent(3, 0.0, 1448)),
            ..s
        };
        assert!(run(&big).is_empty());
    }
}
