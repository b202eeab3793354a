//! `tcp-connect-refused`: a client's connection attempts to a service answered by a reset and
//! no SYN-ACK: the host is up, but nothing accepts connections on that port (or a firewall
//! rejects them with a reset). Grouped per client and service: the attempts made within
//! [`COLLECT_NS`](super::kit::attempts::COLLECT_NS) of the first make one finding, later ones within a minute are counted.
//! Attempts a rule about their cause already reported (`auth-realm-unreachable`,
//! `upload-location-unreachable`) are not reported again.

use super::kit::{AttemptGroups, Group, Shared, SharedNames, secs};
use super::{Interest, Rule, RuleInfo};
use crate::capture::TimestampNs;
use crate::finding::{Finding, FindingDraft, Severity};
use crate::flow::{ConnectionAttempt, Outcome};
use crate::http::Exchange;

pub static INFO: RuleInfo = RuleInfo {
    id: "tcp-connect-refused",
    severity: Severity::Error,
    title: "Connections refused: SYNs answered by a reset, nothing listens",
    doc: include_str!("../../docs/rules/tcp-connect-refused.md"),
    suppress_for_ns: Some(60_000_000_000),
    explained_by_others: true,
};

pub struct TcpConnectRefused {
    groups: AttemptGroups,
    names: SharedNames,
}

impl Default for TcpConnectRefused {
    fn default() -> Self {
        TcpConnectRefused {
            groups: AttemptGroups::new(INFO.suppress_for_ns),
            names: SharedNames::default(),
        }
    }
}

impl TcpConnectRefused {
    /// The rule, with the names of server addresses shared with the other rules of its set.
    pub fn with(shared: &Shared) -> Self {
        TcpConnectRefused {
            names: shared.names(),
            ..Self::default()
        }
    }

    fn report(&self, g: &Group, out: &mut Vec<Finding>) {
        let Some(first) = g.first() else {
            return;
        };
        let key = first
            .rst_frame
            .unwrap_or(first.syn_frames.first().copied().unwrap_or(0));
        let named = self
            .names
            .of(g.server, first.syn_frames.first().copied().unwrap_or(0));
        let times = if g.count == 1 {
            "once".to_string()
        } else {
            format!("{} times", g.count)
        };
        let mut detail = format!(
            "{} tried to connect to {} {times} ({} SYN{}); {} answered with a reset (RST) and no SYN-ACK (first reset: frame {key}). \
             The host {} is up and reachable, but nothing accepts connections on port {}: the service is down, listens on another port or \
             only on another address (such as 127.0.0.1), or a firewall rejects the port with a reset.",
            g.client,
            g.server,
            g.syns(),
            if g.syns() == 1 { "" } else { "s" },
            if g.count == 1 { "it was" } else { "each was" },
            g.server.ip(),
            g.server.port(),
        );
        detail.push_str(&g.context(named.as_ref(), "refused"));
        let server = g.server;
        let mut remediation = named
            .and_then(|n| n.came_from("if the service does not live there"))
            .unwrap_or_default();
        remediation.push_str(&format!(
            "Make the service listen on {server}: on {} check `ss -ltnp 'sport = :{}'` (a service bound to 127.0.0.1 refuses other clients); \
             for a Kubernetes Service, check that it has ready endpoints (`kubectl get endpoints`) and that `targetPort` is the port the \
             container listens on; if a firewall rejects the port (`REJECT --reject-with tcp-reset`), allow it from {}.",
            server.ip(),
            server.port(),
            g.client
        ));
        out.push(
            FindingDraft {
                rule: INFO.id,
                severity: INFO.severity,
                key_frame: key,
                evidence: g.evidence("the service"),
                title: format!(
                    "Connections from {} to {server} refused (reset): nothing listens",
                    g.client
                ),
                detail,
                remediation,
                time: secs(first.first_syn_ts),
                identifier: None,
            }
            .build(),
        );
    }
}

impl Rule for TcpConnectRefused {
    fn info(&self) -> &'static RuleInfo {
        &INFO
    }

    fn interest(&self) -> Interest {
        self.names.interest() | Interest::ATTEMPT
    }

    fn on_exchange(&mut self, ex: &Exchange, _out: &mut Vec<Finding>) {
        self.names.learn(ex);
    }

    fn on_attempt(&mut self, a: &ConnectionAttempt, out: &mut Vec<Finding>) {
        self.groups.seen(a);
        if a.outcome != Outcome::Refused {
            return;
        }
        if let Some(g) = self.groups.add(a, a.last_syn_ts) {
            self.report(&g, out);
        }
    }

    fn next_deadline(&self) -> Option<TimestampNs> {
        self.groups.next_deadline()
    }

    fn on_tick(&mut self, now: TimestampNs, out: &mut Vec<Finding>) {
        for g in self.groups.take_due(now) {
            self.report(&g, out);
        }
    }

    fn finish(&mut self, out: &mut Vec<Finding>) {
        for g in self.groups.drain() {
            self.report(&g, out);
        }
    }

    fn state_dropped(&self) -> u64 {
        self.groups.dropped() + self.names.dropped()
    }

    fn suppressed(&self) -> u64 {
        self.groups.repeats()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rules::kit::attempts::COLLECT_NS;
    use crate::rules::testing::exchange;
    use std::net::SocketAddr;

    fn refused(stream: u64, port: u16, frame: u64, ts: i64) -> ConnectionAttempt {
        let mut a = ConnectionAttempt::new(
            stream,
            SocketAddr::from(([10, 0, 0, 1], port)),
            SocketAddr::from(([10, 0, 0, 2], 5000)),
            frame,
            ts,
        );
        a.rst_frame = Some(frame + 1);
        a.outcome = Outcome::Refused;
        a
    }

    #[test]
    fn attempts_of_one_client_to_one_service_make_one_finding_named_by_an_earlier_location() {
        let mut r = TcpConnectRefused::default();
        let mut out = Vec::new();
        let ex = exchange(
            "10.0.0.1:39999",
            "10.0.0.9:443",
            0,
            1,
            0,
            b"POST /v2/a/blobs/uploads/ HTTP/1.1\r\nHost: reg\r\n\r\n",
            b"HTTP/1.1 202 Accepted\r\nLocation: http://10.0.0.2:5000/v2/a/blobs/uploads/u1\r\nContent-Length: 0\r\n\r\n",
        );
        r.on_exchange(&ex, &mut out);
        r.on_attempt(&refused(1, 40000, 5, 0), &mut out);
        r.on_attempt(&refused(2, 40001, 7, 500_000_000), &mut out);
        assert_eq!(r.next_deadline(), Some(COLLECT_NS));
        r.on_tick(COLLECT_NS, &mut out);
        // A retry 10 s later repeats the finding: counted.
        r.on_attempt(&refused(3, 40002, 9, 10_000_000_000), &mut out);
        r.finish(&mut out);
        assert_eq!(out.len(), 1);
        let f = &out[0];
        assert_eq!(f.key_frame, 6);
        assert_eq!(f.frames, [5, 6, 7, 8]);
        assert!(f.detail.contains("2 times"), "{}", f.detail);
        assert!(
            f.detail
                .contains("the Location in the 202 answer of frame 3"),
            "{}",
            f.detail
        );
        assert!(
            f.remediation.starts_with("The address came from"),
            "{}",
            f.remediation
        );
        assert_eq!(r.suppressed(), 1);
    }

    #[test]
    fn answered_and_unanswered_attempts_are_not_refusals() {
        let mut r = TcpConnectRefused::default();
        let mut out = Vec::new();
        let mut a = refused(1, 40000, 5, 0);
        a.outcome = Outcome::Answered;
        r.on_attempt(&a, &mut out);
        a.outcome = Outcome::NoAnswer;
        r.on_attempt(&a, &mut out);
        r.finish(&mut out);
        assert!(out.is_empty());
    }
}
