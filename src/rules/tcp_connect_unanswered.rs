//! `tcp-connect-unanswered`: a client's SYNs to a service retransmitted with no answer at all
//! (no SYN-ACK, no reset), or answered by an ICMP destination unreachable: packets dropped on
//! the way (a firewall, security group or NetworkPolicy), an address no host has, or a path
//! that does not come back. Grouped per client and service as `tcp-connect-refused` is; not
//! reported when a rule about the cause (`auth-realm-unreachable`,
//! `upload-location-unreachable`) already has the SYNs as evidence.
//!
//! An attempt is unanswered once it has sent [`MIN_SYNS`] SYNs over at least [`MIN_SPAN_NS`]
//! (two retransmissions, so a slow first answer or a SYN-ACK lost once does not count, nor a
//! SYN captured twice) and the last has gone [`RETRY_WAIT_NS`] without an answer: 4 s after the
//! first SYN with Linux's timers (SYNs at 0, 1, 3 s), 10 s with Windows' (0, 3, 9 s); a
//! finding follows [`COLLECT_NS`](super::kit::attempts::COLLECT_NS) later, after
//! `auth-realm-unreachable` (2.5 s) has reported the SYNs it explains.

use super::kit::{AttemptGroups, Group, Shared, SharedNames, Waiting, secs};
use super::{Interest, Rule, RuleInfo};
use crate::capture::TimestampNs;
use crate::finding::{Finding, FindingDraft, Severity};
use crate::flow::{ConnectionAttempt, Outcome};
use crate::http::Exchange;

pub static INFO: RuleInfo = RuleInfo {
    id: "tcp-connect-unanswered",
    severity: Severity::Error,
    title: "Connection attempts unanswered (SYNs retransmitted) or ICMP unreachable",
    doc: include_str!("../../docs/rules/tcp-connect-unanswered.md"),
    suppress_for_ns: Some(60_000_000_000),
    explained_by_others: true,
};

/// SYNs an attempt sends before it can count as unanswered.
pub const MIN_SYNS: u32 = 3;
/// ...over at least this long (no TCP retransmits a SYN before its 1 s initial RTO, RFC 6298).
pub const MIN_SPAN_NS: TimestampNs = 1_000_000_000;
/// The last SYN unanswered this long makes the attempt unanswered.
pub const RETRY_WAIT_NS: TimestampNs = 1_000_000_000;

/// An attempt retransmitted enough, and when it counts as unanswered.
#[derive(Debug)]
struct Pending {
    attempt: ConnectionAttempt,
    due: TimestampNs,
}

pub struct TcpConnectUnanswered {
    pending: Waiting<Pending>,
    groups: AttemptGroups,
    names: SharedNames,
}

impl Default for TcpConnectUnanswered {
    fn default() -> Self {
        TcpConnectUnanswered {
            pending: Waiting::new(|p| p.due),
            groups: AttemptGroups::new(INFO.suppress_for_ns),
            names: SharedNames::default(),
        }
    }
}

fn retransmitted(a: &ConnectionAttempt) -> bool {
    a.syn_count >= MIN_SYNS && a.last_syn_ts.saturating_sub(a.first_syn_ts) >= MIN_SPAN_NS
}

impl TcpConnectUnanswered {
    /// The rule, with the names of server addresses shared with the other rules of its set.
    pub fn with(shared: &Shared) -> Self {
        TcpConnectUnanswered {
            names: shared.names(),
            ..Self::default()
        }
    }

    fn failed(&mut self, a: &ConnectionAttempt, at: TimestampNs, out: &mut Vec<Finding>) {
        if let Some(g) = self.groups.add(a, at) {
            self.report(&g, out);
        }
    }

    fn report(&self, g: &Group, out: &mut Vec<Finding>) {
        let Some(first) = g.first() else {
            return;
        };
        let Some(&key) = first.syn_frames.first() else {
            return;
        };
        let icmp = g.attempts.iter().find_map(|a| a.icmp_frame);
        let last = g
            .attempts
            .iter()
            .map(|a| a.last_syn_ts)
            .max()
            .unwrap_or(first.last_syn_ts);
        let server = g.server;
        let named = self.names.of(server, key);
        let times = if g.count == 1 {
            "once".to_string()
        } else {
            format!("{} times", g.count)
        };
        let syns = g.syns();
        let mut detail = format!("{} tried to connect to {server} {times}: ", g.client);
        match icmp {
            Some(f) => {
                let says = g
                    .attempts
                    .iter()
                    .find_map(|a| a.icmp_says)
                    .unwrap_or("destination unreachable");
                let meaning = if says == "port unreachable" {
                    format!(
                        "the host {} is there but rejects port {} (a firewall `REJECT`, or kube-proxy for a Service with no ready endpoints)",
                        server.ip(),
                        server.port()
                    )
                } else if says.contains("prohibited") {
                    "a firewall on the path forbids the connection".to_string()
                } else {
                    format!("a router or the host says {} cannot be reached", server.ip())
                };
                detail.push_str(&format!(
                    "{syns} SYN{} answered by an ICMP {says} (frame {f}): {meaning}.",
                    if syns == 1 { "" } else { "s" }
                ));
            }
            None => detail.push_str(&format!(
                "{syns} SYNs over {:.1} s with no SYN-ACK, no reset and no ICMP error: the SYNs are dropped without a word on the way (a \
                 firewall, security group or NetworkPolicy that drops), no host has the address (a stale Service IP, DNS record or \
                 configured address), or the answers take another path back (asymmetric routing). Where this capture was taken, the \
                 SYNs were on the wire; a capture on the server's side shows whether they arrive there.",
                last.saturating_sub(first.first_syn_ts) as f64 / 1e9
            )),
        }
        detail.push_str(&g.context(named.as_ref(), "unanswered"));
        let mut remediation = named
            .and_then(|n| n.came_from("if clients cannot reach it"))
            .unwrap_or_default();
        let rejected = g
            .attempts
            .iter()
            .any(|a| a.icmp_says == Some("port unreachable"));
        if rejected {
            remediation.push_str(&format!(
                "Find what rejects port {} on {}: for a Kubernetes Service, kube-proxy rejects while the Service has no ready \
                 endpoints (`kubectl get endpoints`, the pods' readiness, the Service's selector and `targetPort`); otherwise a \
                 firewall `REJECT` rule on the host (`nft list ruleset`, `iptables -S`): allow the port from {}.",
                server.port(),
                server.ip(),
                g.client
            ));
        } else {
            remediation.push_str(&format!(
                "Make {server} reachable from {}: allow TCP port {} from the client in every firewall, security group and \
                 Kubernetes NetworkPolicy on the path; check that the address is right and a host has it (`ip route get {}` and \
                 `ip neigh` on the client, `ss -ltn` on the server) and that the answers route back the way the SYNs came.",
                g.client,
                server.port(),
                server.ip(),
            ));
        }
        out.push(
            FindingDraft {
                rule: INFO.id,
                severity: INFO.severity,
                key_frame: key,
                evidence: g.evidence("the service"),
                title: match icmp {
                    Some(_) => format!(
                        "Connections from {} to {server} unreachable (ICMP)",
                        g.client
                    ),
                    None => format!(
                        "Connections from {} to {server} unanswered: SYNs dropped",
                        g.client
                    ),
                },
                detail,
                remediation,
                time: secs(first.first_syn_ts),
                identifier: None,
            }
            .build(),
        );
    }
}

impl Rule for TcpConnectUnanswered {
    fn info(&self) -> &'static RuleInfo {
        &INFO
    }

    fn interest(&self) -> Interest {
        self.names.interest() | Interest::ATTEMPT | Interest::ATTEMPT_PROGRESS
    }

    fn on_exchange(&mut self, ex: &Exchange, _out: &mut Vec<Finding>) {
        self.names.learn(ex);
    }

    fn on_attempt_progress(&mut self, a: &ConnectionAttempt, out: &mut Vec<Finding>) {
        if !retransmitted(a) {
            return;
        }
        match self
            .pending
            .iter_mut()
            .find(|p| p.attempt.stream == a.stream)
        {
            // The attempt as it was when it became conclusive: its evidence does not depend on
            // when the deadline is seen (a live watch and the analysis of its file agree).
            Some(_) => {}
            None => {
                let due = a.last_syn_ts.saturating_add(RETRY_WAIT_NS);
                if let Some(p) = self.pending.push(Pending {
                    attempt: a.clone(),
                    due,
                }) {
                    self.failed(&p.attempt, p.due, out);
                }
            }
        }
    }

    fn on_attempt(&mut self, a: &ConnectionAttempt, out: &mut Vec<Finding>) {
        self.groups.seen(a);
        let was_pending = self
            .pending
            .iter()
            .position(|p| p.attempt.stream == a.stream)
            .and_then(|i| self.pending.remove(i));
        match a.outcome {
            Outcome::Answered | Outcome::Refused => {}
            Outcome::Unreachable => self.failed(a, a.last_syn_ts, out),
            // The flow (or the capture) ended: unanswered if retransmitted enough.
            Outcome::NoAnswer if retransmitted(a) => match was_pending {
                Some(p) => self.failed(&p.attempt, p.due, out),
                None => self.failed(a, a.last_syn_ts, out),
            },
            Outcome::NoAnswer => {}
        }
    }

    fn next_deadline(&self) -> Option<TimestampNs> {
        [self.pending.next(), self.groups.next_deadline()]
            .into_iter()
            .flatten()
            .min()
    }

    fn on_tick(&mut self, now: TimestampNs, out: &mut Vec<Finding>) {
        for p in self.pending.take_due(now) {
            self.failed(&p.attempt, p.due, out);
        }
        for g in self.groups.take_due(now) {
            self.report(&g, out);
        }
    }

    fn finish(&mut self, out: &mut Vec<Finding>) {
        for p in self.pending.drain() {
            self.failed(&p.attempt, p.due, out);
        }
        for g in self.groups.drain() {
            self.report(&g, out);
        }
    }

    fn state_dropped(&self) -> u64 {
        self.pending.dropped() + self.groups.dropped() + self.names.dropped()
    }

    fn suppressed(&self) -> u64 {
        self.groups.repeats()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rules::kit::attempts::COLLECT_NS;
    use std::net::SocketAddr;

    const S: TimestampNs = 1_000_000_000;

    fn attempt(stream: u64, frame: u64, syns: &[TimestampNs]) -> ConnectionAttempt {
        let mut a = ConnectionAttempt::new(
            stream,
            SocketAddr::from(([10, 0, 0, 1], 40000 + stream as u16)),
            SocketAddr::from(([10, 0, 0, 2], 443)),
            frame,
            syns[0],
        );
        for (i, t) in syns.iter().enumerate().skip(1) {
            a.syn(frame + i as u64, *t);
        }
        a
    }

    #[test]
    fn a_third_syn_unanswered_for_1_s_is_reported_after_the_collection_time() {
        let mut r = TcpConnectUnanswered::default();
        let mut out = Vec::new();
        r.on_attempt_progress(&attempt(0, 1, &[0, S]), &mut out);
        assert_eq!(r.next_deadline(), None);
        r.on_attempt_progress(&attempt(0, 1, &[0, S, 3 * S]), &mut out);
        assert_eq!(r.next_deadline(), Some(3 * S + RETRY_WAIT_NS));
        r.on_attempt_progress(&attempt(0, 1, &[0, S, 3 * S, 4 * S]), &mut out);
        r.on_tick(3 * S + RETRY_WAIT_NS, &mut out);
        assert!(out.is_empty());
        assert_eq!(r.next_deadline(), Some(4 * S + COLLECT_NS));
        r.on_tick(4 * S + COLLECT_NS, &mut out);
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].key_frame, 1);
        // The SYNs that made it conclusive.
        assert_eq!(out[0].frames, [1, 2, 3]);
        let d = &out[0].detail;
        assert!(d.contains("3 SYNs over 3.0 s"), "{d}");
    }

    #[test]
    fn a_fallback_to_another_address_is_not_a_failure() {
        let mut r = TcpConnectUnanswered::default();
        let mut out = Vec::new();
        let mut a = attempt(0, 1, &[0, S, 3 * S]);
        a.outcome = Outcome::NoAnswer;
        r.on_attempt(&a, &mut out);
        // The same client then connects to the same port at another address.
        let mut b = ConnectionAttempt::new(
            1,
            SocketAddr::from(([10, 0, 0, 1], 41000)),
            SocketAddr::from(([10, 0, 0, 3], 443)),
            9,
            4 * S,
        );
        b.outcome = Outcome::Answered;
        r.on_attempt(&b, &mut out);
        r.finish(&mut out);
        assert!(out.is_empty());
        assert_eq!(r.suppressed(), 1);
    }

    #[test]
    fn answered_late_or_duplicated_syns_are_not_reported() {
        let mut r = TcpConnectUnanswered::default();
        let mut out = Vec::new();
        let mut a = attempt(0, 1, &[0, S, 3 * S]);
        r.on_attempt_progress(&a, &mut out);
        a.outcome = Outcome::Answered;
        r.on_attempt(&a, &mut out);
        // A retransmission, then the capture ends.
        r.on_attempt(&attempt(2, 9, &[0, S]), &mut out);
        r.finish(&mut out);
        assert!(out.is_empty());
    }

    #[test]
    fn icmp_unreachable_is_reported_without_retransmissions() {
        let mut r = TcpConnectUnanswered::default();
        let mut out = Vec::new();
        let mut a = attempt(0, 1, &[0]);
        a.icmp_frame = Some(2);
        a.outcome = Outcome::Unreachable;
        r.on_attempt(&a, &mut out);
        r.finish(&mut out);
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].frames, [1, 2]);
        assert!(out[0].title.contains("ICMP"));
    }
}
