//! `s3-clock-skew`: S3 refuses a SigV4 request because the signer's clock and S3's differ by
//! more than 15 minutes: the answer is `403 RequestTimeTooSkewed`, or an S3 error to a request
//! whose `X-Amz-Date` is more than 15 minutes from the answer's `Date`. The finding says by how
//! much and which clock is off, from three clocks: the signer's (`X-Amz-Date`), the answer's
//! (`Date`) and the capture's (the frame times); and the registry's resulting 5xx, as
//! `s3-error-not-xml` correlates it.

use super::kit::{S3Group, S3Groups, body_of, exchange_evidence, request_line, secs};
use super::s3::{Clocks, is_s3_request, parse_s3_error};
use super::{Interest, Rule, RuleInfo};
use crate::capture::TimestampNs;
use crate::finding::{Evidence, Finding, FindingDraft, Severity};
use crate::http::Exchange;

pub static INFO: RuleInfo = RuleInfo {
    id: "s3-clock-skew",
    severity: Severity::Error,
    title: "S3 refused requests signed with a clock more than 15 minutes off (RequestTimeTooSkewed)",
    doc: include_str!("../../docs/rules/s3-clock-skew.md"),
    suppress_for_ns: None,
    explained_by_others: false,
};

/// A clock within this of the capture's counts as right (seconds): `Date` has a resolution of
/// one second, and hosts drift.
const AGREES_SECS: i64 = 60;

#[derive(Debug, Clone)]
struct Answer {
    evidence: Vec<Evidence>,
    request: String,
    status: u16,
    code: String,
    resp_frame: u64,
    clocks: Clocks,
    /// The capture's clock at the request and at the answer (seconds).
    req_secs: i64,
    resp_secs: i64,
    server: Option<String>,
    /// S3's own clock, from the `<ServerTime>` AWS puts in a `RequestTimeTooSkewed` error.
    server_time: Option<i64>,
}

/// The `<ServerTime>2023-01-04T20:41:18Z</ServerTime>` of an AWS S3 error.
fn server_time(body: &[u8]) -> Option<i64> {
    let at = memchr::memmem::find(body, b"<ServerTime>")? + 12;
    let v = std::str::from_utf8(body.get(at..at + 19)?).ok()?;
    let n = |a: usize, b: usize| v.get(a..b).and_then(|x| x.parse::<i64>().ok());
    if v.get(10..11) != Some("T") {
        return None;
    }
    super::kit::time::epoch(
        n(0, 4)?,
        n(5, 7)?,
        n(8, 10)?,
        n(11, 13)?,
        n(14, 16)?,
        n(17, 19)?,
    )
}

#[derive(Default)]
pub struct S3ClockSkew {
    groups: S3Groups<(), Answer>,
}

/// `+20m 3s`, `-45 s`.
fn offset(secs: i64) -> String {
    let sign = if secs < 0 { "-" } else { "+" };
    let s = secs.unsigned_abs();
    if s < 120 {
        format!("{sign}{s} s")
    } else if s < 7200 {
        format!("{sign}{}m {}s", s / 60, s % 60)
    } else {
        format!("{sign}{}h {}m", s / 3600, (s % 3600) / 60)
    }
}

impl S3ClockSkew {
    fn emit(g: S3Group<(), Answer>, out: &mut Vec<Finding>) {
        let Some(first) = g.answers.first() else {
            return;
        };
        let mut evidence: Vec<Evidence> =
            g.answers.iter().flat_map(|a| a.evidence.clone()).collect();
        let signer = first.clocks.signed.map(|t| t - first.req_secs);
        // S3's own clock where its error says it, else the answer's `Date`.
        let answer = first
            .server_time
            .or(first.clocks.date)
            .map(|t| t - first.resp_secs);
        let times = if g.count > 1 {
            format!("{} requests were", g.count)
        } else {
            "a request was".to_string()
        };
        let mut detail = format!(
            "{} made S3 requests to {}: {times} answered {} `{}`, first {} at frame {}.",
            g.s3_client, g.endpoint, first.status, first.code, first.request, first.resp_frame
        );
        match signer {
            Some(o) => detail.push_str(&format!(
                " The request was signed at `X-Amz-Date` {} from the capture's clock",
                offset(o)
            )),
            None => detail.push_str(" The request carries no `X-Amz-Date`"),
        }
        match answer {
            Some(o) if first.server_time.is_some() => detail.push_str(&format!(
                "; S3's own time (the `ServerTime` of its error) is {} from it.",
                offset(o)
            )),
            Some(o) => detail.push_str(&format!(
                "; the answer's `Date` is {} from it{}.",
                offset(o),
                first
                    .server
                    .as_ref()
                    .map(|s| format!(" (Server: {s})"))
                    .unwrap_or_default()
            )),
            None => detail.push_str("; the answer has no `Date`."),
        }
        let ok = |o: Option<i64>| o.is_some_and(|o| o.abs() <= AGREES_SECS);
        let off = |o: Option<i64>| o.is_some_and(|o| o.abs() > AGREES_SECS);
        let signer_host = g.s3_client;
        let (verdict, fix) = if off(signer) && !off(answer) {
            (
                format!(
                    " The signer's clock is off: {signer_host} (the registry's host, or its container's) runs {} from the \
                     capture's clock and S3's, and S3 refuses requests signed more than 15 minutes from its own time.",
                    offset(signer.unwrap_or(0))
                ),
                format!(
                    "Synchronise the clock of {signer_host}, the host the registry runs on: chrony or ntpd (`chronyc tracking`, \
                     `timedatectl` must show it synchronised); in Kubernetes, the node's clock (containers share it)."
                ),
            )
        } else if off(answer) && ok(signer) {
            (
                format!(
                    " S3's clock is off: {} answers with a time {} from the capture's clock and the signer's.",
                    g.endpoint,
                    offset(answer.unwrap_or(0))
                ),
                format!(
                    "Synchronise the clock of the S3 service at {} (the MinIO/Ceph host): chrony or ntpd; the registry's clock \
                     agrees with the capture's.",
                    g.endpoint
                ),
            )
        } else if ok(signer) && ok(answer) {
            (
                format!(
                    " Both the signer's clock and the answer's `Date` agree with the capture's, so the clock that is off is the \
                     S3 service's own behind {}: the `Date` came from a proxy in front of it (nginx writes its own), not from S3.",
                    g.endpoint
                ),
                format!(
                    "Synchronise the clock of the S3 service behind {} (the MinIO/Ceph host, not the proxy in front of it): \
                     chrony or ntpd; the registry's clock agrees with the capture's.",
                    g.endpoint
                ),
            )
        } else {
            (
                format!(
                    " The signer's clock and the answer's `Date` differ by {}; the capture's clock cannot tell which one is off.",
                    offset(first.clocks.skew().unwrap_or(0))
                ),
                format!(
                    "Synchronise the clocks of {signer_host} (the registry's host) and of the S3 service at {}: chrony or ntpd, \
                     then compare `date -u` on both.",
                    g.endpoint
                ),
            )
        };
        detail.push_str(&verdict);
        g.tell_caused(
            "answered",
            " No 5xx from the S3 client to its own client was seen in the capture around that time.",
            &mut detail,
            &mut evidence,
        );
        out.push(
            FindingDraft {
                rule: INFO.id,
                severity: INFO.severity,
                key_frame: first.resp_frame,
                evidence,
                title: format!(
                    "S3 at {} refused {}'s requests: clocks more than 15 minutes apart",
                    g.endpoint, g.s3_client
                ),
                detail,
                remediation: fix,
                identifier: None,
                time: secs(g.first_ts),
            }
            .build(),
        );
    }
}

impl Rule for S3ClockSkew {
    fn info(&self) -> &'static RuleInfo {
        &INFO
    }

    fn interest(&self) -> Interest {
        Interest::S3_REFUSED | Interest::STATUS_5XX
    }

    fn on_exchange(&mut self, ex: &Exchange, out: &mut Vec<Finding>) {
        if let (Some(req), Some(resp)) = (&ex.request, &ex.response)
            && resp.status().is_some_and(|s| s >= 400)
            && is_s3_request(req)
        {
            let body = body_of(resp);
            let error = parse_s3_error(&body);
            let clocks = Clocks::of(req, resp);
            let skewed = error
                .as_ref()
                .is_some_and(|e| e.code == "RequestTimeTooSkewed")
                || clocks.too_skewed();
            if skewed {
                let answer = Answer {
                    evidence: super::kit::named(
                        exchange_evidence(ex, "S3 request", "S3 refusal"),
                        ex.server,
                        "S3 endpoint",
                    ),
                    request: request_line(req, 80),
                    status: resp.status().unwrap_or(0),
                    code: error.map(|e| e.code).unwrap_or_default(),
                    resp_frame: resp.frame,
                    clocks,
                    req_secs: req.first_ts / 1_000_000_000,
                    resp_secs: resp.end_ts / 1_000_000_000,
                    server: resp.header_str("server"),
                    server_time: server_time(&body),
                };
                if let Some(g) = self.groups.add(ex, (), answer) {
                    Self::emit(g, out);
                }
                return;
            }
        }
        if let Some(g) = self.groups.other(ex) {
            Self::emit(g, out);
        }
    }

    fn next_deadline(&self) -> Option<TimestampNs> {
        self.groups.next_deadline()
    }

    fn on_tick(&mut self, now: TimestampNs, out: &mut Vec<Finding>) {
        for g in self.groups.take_due(now) {
            Self::emit(g, out);
        }
    }

    fn finish(&mut self, out: &mut Vec<Finding>) {
        for g in self.groups.drain() {
            Self::emit(g, out);
        }
    }

    fn state_dropped(&self) -> u64 {
        self.groups.dropped()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rules::testing::exchange;

    /// A request signed at 2026-12-05 01:42:34 UTC, captured at `t`, answered with `date`.
    fn refused(t: i64, date: &str, code: &str) -> Exchange {
        let body = format!("<Error><Code>{code}</Code><Message>m</Message></Error>");
        let resp = format!(
            "HTTP/1.1 403 Forbidden\r\nDate: {date}\r\nContent-Type: application/xml\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        );
        exchange(
            "10.0.0.20:40000",
            "10.0.0.40:9000",
            1,
            9,
            t,
            b"GET /b/k HTTP/1.1\r\nHost: s3\r\nX-Amz-Date: 20261205T014234Z\r\nAuthorization: AWS4-HMAC-SHA256 Credential=A/20261205/us-east-1/s3/aws4_request, SignedHeaders=host;x-amz-date, Signature=00\r\n\r\n",
            resp.as_bytes(),
        )
    }

    const SIGNED: i64 = 1_796_434_954; // 20261205T014234Z

    #[test]
    fn which_clock_is_off() {
        let run = |t: i64, date: &str, code: &str| {
            let mut r = S3ClockSkew::default();
            let mut out = Vec::new();
            r.on_exchange(&refused(t, date, code), &mut out);
            r.finish(&mut out);
            out
        };
        // The signer 20 minutes behind the capture and S3.
        let f = run(
            SIGNED + 1200,
            "Sat, 05 Dec 2026 02:02:34 GMT",
            "RequestTimeTooSkewed",
        );
        assert_eq!(f.len(), 1);
        assert!(
            f[0].detail.contains("The signer's clock is off"),
            "{}",
            f[0].detail
        );
        assert!(f[0].detail.contains("-20m 0s"), "{}", f[0].detail);
        assert!(
            f[0].remediation
                .starts_with("Synchronise the clock of 10.0.0.20")
        );
        // S3 20 minutes ahead, an error that is not RequestTimeTooSkewed.
        let f = run(SIGNED, "Sat, 05 Dec 2026 02:02:34 GMT", "AccessDenied");
        assert_eq!(f.len(), 1);
        assert!(f[0].detail.contains("S3's clock is off"), "{}", f[0].detail);
        // Every clock the capture shows agrees: S3's own, behind a proxy.
        let f = run(
            SIGNED,
            "Sat, 05 Dec 2026 01:42:34 GMT",
            "RequestTimeTooSkewed",
        );
        assert!(f[0].detail.contains("S3 service's own"), "{}", f[0].detail);
        // AWS's own error says S3's time: the signer 20 minutes behind it.
        let body = "<Error><Code>RequestTimeTooSkewed</Code><ServerTime>2026-12-05T02:02:34Z</ServerTime></Error>";
        let resp = format!(
            "HTTP/1.1 403 Forbidden\r\nDate: Sat, 05 Dec 2026 02:02:34 GMT\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        );
        let ex = exchange(
            "10.0.0.20:40000",
            "10.0.0.40:9000",
            1,
            9,
            SIGNED + 1200,
            b"GET /b/k HTTP/1.1\r\nX-Amz-Date: 20261205T014234Z\r\nAuthorization: AWS4-HMAC-SHA256 Credential=A/x, Signature=0\r\n\r\n",
            resp.as_bytes(),
        );
        let mut r = S3ClockSkew::default();
        let mut f = Vec::new();
        r.on_exchange(&ex, &mut f);
        r.finish(&mut f);
        assert!(
            f[0].detail.contains("`ServerTime` of its error) is +0 s"),
            "{}",
            f[0].detail
        );
        assert!(
            f[0].detail.contains("The signer's clock is off"),
            "{}",
            f[0].detail
        );
        // Clocks that agree and another error: not this rule's.
        assert!(run(SIGNED, "Sat, 05 Dec 2026 01:42:35 GMT", "AccessDenied").is_empty());
    }
}
