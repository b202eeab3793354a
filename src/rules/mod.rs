//! Rules: small modules on one engine. Each receives completed HTTP exchanges and connection
//! attempts as they happen, keeps its own bounded state, and emits a [`Finding`] as soon as its
//! evidence is conclusive, so the same rules serve files and live capture. Time is capture
//! time, passed by [`Rule::on_tick`]; a rule that waits for more evidence (retries, the
//! registry's own 500) does so until a deadline in capture time, never until the end.

pub mod auth_realm_unreachable;
pub mod blob_upload_unknown;
pub mod interest;
pub mod kit;
pub mod mtu_blackhole;
pub mod presigned_url_403;
pub mod proxy_body_too_large;
pub mod proxy_error_page;
pub mod rate_limited;
pub mod registry_api_version_missing;
pub mod s3;
pub mod s3_clock_skew;
pub mod s3_error;
pub mod s3_error_not_xml;
pub mod tcp_connect_refused;
pub mod tcp_connect_unanswered;
pub mod tls_handshake_rejected;
pub mod tls_protocol_mismatch;
pub mod token_expired;
pub mod transfer_reset;
pub mod upload_location_unreachable;

use crate::capture::TimestampNs;
use crate::engine::{Event, Sink};
use crate::finding::{Finding, Severity};
use crate::flow::{ConnRecord, ConnectionAttempt, Ending};
use crate::http::Exchange;
pub use interest::Interest;

/// Most items a rule keeps in any one table; beyond it the oldest is dropped (and counted).
pub const MAX_RULE_STATE: usize = 512;

/// What every rule is.
pub trait Rule {
    fn info(&self) -> &'static RuleInfo;
    fn on_exchange(&mut self, _ex: &Exchange, _out: &mut Vec<Finding>) {}
    /// An attempt was resolved (answered, refused, unreachable) or ended unanswered.
    fn on_attempt(&mut self, _a: &ConnectionAttempt, _out: &mut Vec<Finding>) {}
    /// An attempt's SYN was retransmitted; still unanswered.
    fn on_attempt_progress(&mut self, _a: &ConnectionAttempt, _out: &mut Vec<Finding>) {}
    /// A connection ended. Records are kept only when some rule asks for them
    /// ([`Rule::wants_conn_records`]).
    fn on_conn_end(&mut self, _c: &ConnRecord, _out: &mut Vec<Finding>) {}
    /// A connection ended with a message cut short (its exchange came first).
    fn on_cut_short(&mut self, _e: &Ending, _out: &mut Vec<Finding>) {}
    /// A TLS connection ended: what its handshake showed without keys, and how it went.
    fn on_tls(&mut self, _t: &crate::tls::TlsSummary, _out: &mut Vec<Finding>) {}
    /// One direction's data stopped getting through, and the stall is over.
    fn on_stall(&mut self, _s: &crate::flow::Stall, _out: &mut Vec<Finding>) {}
    /// Whether this rule reads connection records ([`Rule::on_conn_end`]).
    fn wants_conn_records(&self) -> bool {
        false
    }
    /// Capture time is now `now`; the earliest deadline the rule waits for, if any.
    fn on_tick(&mut self, _now: TimestampNs, _out: &mut Vec<Finding>) {}
    /// The earliest capture time at which `on_tick` has something to do.
    fn next_deadline(&self) -> Option<TimestampNs> {
        None
    }
    fn finish(&mut self, _out: &mut Vec<Finding>) {}
    /// The events the rule is called for from now on (ticks and the end of input reach every
    /// rule): asked after each call to the rule, so it may change with the rule's state. Every
    /// event by default.
    fn interest(&self) -> Interest {
        Interest::ALL
    }
    /// Items dropped because a table was full.
    fn state_dropped(&self) -> u64 {
        0
    }
    /// Repeats the rule itself left unmade (a rule that would otherwise build a finding per
    /// packet of common traffic checks [`RuleInfo::suppress_for_ns`] before building one);
    /// counted with the rule set's own.
    fn suppressed(&self) -> u64 {
        0
    }
}

/// A rule's identity and documentation.
#[derive(Debug)]
pub struct RuleInfo {
    pub id: &'static str,
    pub severity: Severity,
    pub title: &'static str,
    /// The rule's page (`docs/rules/<id>.md`).
    pub doc: &'static str,
    /// A finding whose [`Finding::identifier`] this rule already reported less than this long
    /// before (capture time) is suppressed and counted, as Zeek's `$suppress_for`: a client
    /// retrying the same refused request makes one finding, not one per retry.
    pub suppress_for_ns: Option<TimestampNs>,
    /// A finding of this rule whose key frame is already evidence of another rule's finding is
    /// dropped (and counted with the suppressed): a connection failure that a rule about its
    /// cause (an unreachable token realm or upload URL) has explained is not reported twice.
    /// Such a rule reports no earlier than the rules that explain.
    pub explained_by_others: bool,
}

/// A rule in the registry: what it is, and how to make a fresh one.
pub struct Entry {
    pub info: &'static RuleInfo,
    /// A fresh rule, made with what the rules of its set share.
    pub new: fn(&kit::Shared) -> Box<dyn Rule>,
}

/// Every rule, in the order they run and are listed. Adding a rule is one line here (and its
/// `mod` line above).
pub static RULES: &[Entry] = &[
    Entry {
        info: &s3_error_not_xml::INFO,
        new: |_| Box::new(s3_error_not_xml::S3ErrorNotXml::default()),
    },
    Entry {
        info: &s3_clock_skew::INFO,
        new: |_| Box::new(s3_clock_skew::S3ClockSkew::default()),
    },
    Entry {
        info: &s3_error::INFO,
        new: |_| Box::new(s3_error::S3ErrorRule::default()),
    },
    Entry {
        info: &presigned_url_403::INFO,
        new: |_| Box::new(presigned_url_403::PresignedUrl403::default()),
    },
    Entry {
        info: &auth_realm_unreachable::INFO,
        new: |_| Box::new(auth_realm_unreachable::AuthRealmUnreachable::default()),
    },
    Entry {
        info: &upload_location_unreachable::INFO,
        new: |_| Box::new(upload_location_unreachable::UploadLocationUnreachable::default()),
    },
    Entry {
        info: &proxy_body_too_large::INFO,
        new: |_| Box::new(proxy_body_too_large::ProxyBodyTooLarge),
    },
    Entry {
        info: &proxy_error_page::INFO,
        new: |_| Box::new(proxy_error_page::ProxyErrorPage::default()),
    },
    Entry {
        info: &rate_limited::INFO,
        new: |_| Box::new(rate_limited::RateLimited),
    },
    Entry {
        info: &registry_api_version_missing::INFO,
        new: |_| Box::new(registry_api_version_missing::RegistryApiVersionMissing::default()),
    },
    Entry {
        info: &token_expired::INFO,
        new: |_| Box::new(token_expired::TokenExpired::default()),
    },
    Entry {
        info: &blob_upload_unknown::INFO,
        new: |_| Box::new(blob_upload_unknown::BlobUploadUnknown::default()),
    },
    Entry {
        info: &transfer_reset::INFO,
        new: |_| Box::new(transfer_reset::TransferReset::default()),
    },
    Entry {
        info: &tcp_connect_refused::INFO,
        new: |s| Box::new(tcp_connect_refused::TcpConnectRefused::with(s)),
    },
    Entry {
        info: &tls_handshake_rejected::INFO,
        new: |_| Box::new(tls_handshake_rejected::TlsHandshakeRejected),
    },
    Entry {
        info: &tls_protocol_mismatch::INFO,
        new: |_| Box::new(tls_protocol_mismatch::TlsProtocolMismatch::default()),
    },
    Entry {
        info: &mtu_blackhole::INFO,
        new: |_| Box::new(mtu_blackhole::MtuBlackhole),
    },
    Entry {
        info: &tcp_connect_unanswered::INFO,
        new: |s| Box::new(tcp_connect_unanswered::TcpConnectUnanswered::with(s)),
    },
];

/// A fresh instance of every rule whose id is in `only` (all when `only` is empty).
pub fn instantiate(only: &[String]) -> Result<Vec<Box<dyn Rule>>, String> {
    for id in only {
        if !RULES.iter().any(|r| r.info.id == id) {
            let known: Vec<&str> = RULES.iter().map(|r| r.info.id).collect();
            return Err(format!("unknown rule '{id}' (rules: {})", known.join(", ")));
        }
    }
    let shared = kit::Shared::default();
    Ok(RULES
        .iter()
        .filter(|r| only.is_empty() || only.iter().any(|o| o == r.info.id))
        .map(|r| (r.new)(&shared))
        .collect())
}

/// A rule, with its [`Rule::interest`] and [`Rule::next_deadline`] as of the last call to it
/// (a rule's state changes only when it is called).
struct Slot {
    rule: Box<dyn Rule>,
    interest: Interest,
    deadline: Option<TimestampNs>,
}

/// The rules behind the engine: an engine [`Sink`] that runs every rule on every event and
/// passes findings (and exchanges) on.
pub struct RuleSet<'a> {
    rules: Vec<Slot>,
    findings: Vec<Finding>,
    /// Findings reported with an identifier: rule, identifier, capture time (seconds).
    reported: kit::Bounded<(&'static str, String, f64)>,
    suppressed: u64,
    /// Evidence frames of the findings reported by rules that explain others.
    explaining: kit::Bounded<Vec<u64>>,
    next_deadline: Option<TimestampNs>,
    /// What any rule is interested in: the facts of an exchange worth reading.
    wanted: Interest,
    /// Every rule called for every event, whatever its interest.
    every_rule: bool,
    on_finding: &'a mut dyn FnMut(Finding),
    /// Shown every event, before the rules (the HTML report's timeline).
    on_event: Option<&'a mut dyn FnMut(&Event<'_>)>,
}

impl<'a> RuleSet<'a> {
    pub fn new(rules: Vec<Box<dyn Rule>>, on_finding: &'a mut dyn FnMut(Finding)) -> RuleSet<'a> {
        let next_deadline = rules.iter().filter_map(|r| r.next_deadline()).min();
        let wanted = rules.iter().fold(Interest::NONE, |w, r| w | r.interest());
        RuleSet {
            rules: rules
                .into_iter()
                .map(|rule| Slot {
                    interest: rule.interest(),
                    deadline: rule.next_deadline(),
                    rule,
                })
                .collect(),
            findings: Vec::new(),
            reported: kit::Bounded::default(),
            suppressed: 0,
            explaining: kit::Bounded::default(),
            next_deadline,
            wanted,
            every_rule: false,
            on_finding,
            on_event: None,
        }
    }

    /// The same rules, each called for every event as if it were interested in all: what
    /// the rules find must not change (a test of every rule's [`Rule::interest`]).
    pub fn calling_every_rule(mut self) -> Self {
        self.every_rule = true;
        self.wanted = Interest::ALL;
        self
    }

    fn flush(&mut self) {
        if !self.findings.is_empty() {
            let mut found = std::mem::take(&mut self.findings);
            found.sort_by_key(|f| f.key_frame);
            for f in found {
                if self.explained(&f) || self.repeats(&f) {
                    self.suppressed += 1;
                    continue;
                }
                (self.on_finding)(f);
            }
        }
    }

    /// Whether `f` is of a rule [`RuleInfo::explained_by_others`] and another rule's finding
    /// already has its key frame as evidence; the evidence of a finding of any other rule is
    /// remembered.
    fn explained(&mut self, f: &Finding) -> bool {
        let yields = self
            .rules
            .iter()
            .find(|s| s.rule.info().id == f.rule)
            .is_some_and(|s| s.rule.info().explained_by_others);
        if yields {
            self.explaining
                .iter()
                .any(|frames| frames.binary_search(&f.key_frame).is_ok())
        } else {
            if self.rules.iter().any(|s| s.rule.info().explained_by_others) {
                self.explaining.push(f.frames.clone());
            }
            false
        }
    }

    /// Whether `f` repeats a finding of its rule with the same identifier within the rule's
    /// suppression interval (and if not, remembers it).
    fn repeats(&mut self, f: &Finding) -> bool {
        let Some(id) = &f.identifier else {
            return false;
        };
        let Some(window) = self
            .rules
            .iter()
            .find(|s| s.rule.info().id == f.rule)
            .and_then(|s| s.rule.info().suppress_for_ns)
        else {
            return false;
        };
        let window = window as f64 / 1e9;
        match self
            .reported
            .iter_mut()
            .find(|(rule, seen, _)| *rule == f.rule && seen == id)
        {
            Some((_, _, at)) if f.time - *at < window => true,
            Some((_, _, at)) => {
                *at = f.time;
                false
            }
            None => {
                self.reported.push((f.rule, id.clone(), f.time));
                false
            }
        }
    }

    /// Findings suppressed: repeats ([`RuleInfo::suppress_for_ns`]) and findings another
    /// explained ([`RuleInfo::explained_by_others`]).
    pub fn suppressed(&self) -> u64 {
        self.suppressed + self.rules.iter().map(|s| s.rule.suppressed()).sum::<u64>()
    }

    /// Shows `f` every event, before the rules see it.
    pub fn observe(&mut self, f: &'a mut dyn FnMut(&Event<'_>)) {
        self.on_event = Some(f);
    }

    /// `limits` with what the rules need of the layers below them turned on (connection
    /// records, stalls, when a rule reads them).
    pub fn configure(&self, mut limits: crate::engine::Limits) -> crate::engine::Limits {
        limits.flow.records |= self.rules.iter().any(|s| s.rule.wants_conn_records());
        limits.flow.stalls |= self
            .rules
            .iter()
            .any(|s| s.rule.interest().meets(Interest::STALL));
        limits
    }

    /// Rule-state items dropped because a table was full.
    pub fn state_dropped(&self) -> u64 {
        self.rules.iter().map(|s| s.rule.state_dropped()).sum()
    }
}

impl Sink for RuleSet<'_> {
    /// The hook for the event of every rule it concerns ([`Rule::interest`]; a tick, of every
    /// rule once one is due), then the findings made, in key-frame order.
    fn event(&mut self, ev: Event<'_>) {
        if let Some(f) = self.on_event.as_mut() {
            f(&ev);
        }
        let concerns = match ev {
            Event::Tick(now) if self.next_deadline.is_none_or(|d| now < d) => return,
            Event::Exchange(ex) => Interest::of(ex, self.wanted),
            Event::Attempt(_) => Interest::ATTEMPT,
            Event::AttemptProgress(_) => Interest::ATTEMPT_PROGRESS,
            Event::ConnEnd(_) => Interest::CONN_END,
            Event::CutShort(_) => Interest::CUT_SHORT,
            Event::Tls(_) => Interest::TLS,
            Event::Stall(_) => Interest::STALL,
            Event::Tick(_) | Event::Finish => Interest::ALL,
        };
        let every = self.every_rule || matches!(ev, Event::Tick(_) | Event::Finish);
        let out = &mut self.findings;
        let (mut deadlines_moved, mut interests_moved) = (false, false);
        for s in &mut self.rules {
            if !every && !s.interest.meets(concerns) {
                continue;
            }
            let r = &mut s.rule;
            match ev {
                Event::Exchange(ex) => r.on_exchange(ex, out),
                Event::Attempt(a) => r.on_attempt(a, out),
                Event::AttemptProgress(a) => r.on_attempt_progress(a, out),
                Event::ConnEnd(c) => r.on_conn_end(c, out),
                Event::CutShort(e) => r.on_cut_short(e, out),
                Event::Tls(t) => r.on_tls(t, out),
                Event::Stall(s) => r.on_stall(s, out),
                Event::Tick(now) => r.on_tick(now, out),
                Event::Finish => r.finish(out),
            }
            let interest = r.interest();
            interests_moved |= interest != s.interest;
            s.interest = interest;
            let deadline = r.next_deadline();
            deadlines_moved |= deadline != s.deadline;
            s.deadline = deadline;
        }
        if deadlines_moved {
            self.next_deadline = self.rules.iter().filter_map(|s| s.deadline).min();
        }
        if interests_moved && !self.every_rule {
            self.wanted = self
                .rules
                .iter()
                .fold(Interest::NONE, |w, s| w | s.interest);
        }
        self.flush();
    }

    fn wakes_at(&self) -> Option<TimestampNs> {
        self.next_deadline
    }
}

#[cfg(test)]
pub(crate) mod testing {
    //! Exchanges built from raw HTTP bytes, for rule tests.
    use crate::http::parser::{Limits, Origin};
    use crate::http::{Exchange, HttpConn};
    use std::net::SocketAddr;

    /// One exchange: `req` at frame `f` (time `t` seconds), `resp` at frame `f + 2`.
    pub fn exchange(
        client: &str,
        server: &str,
        stream: u64,
        f: u64,
        t: i64,
        req: &[u8],
        resp: &[u8],
    ) -> Exchange {
        let c: SocketAddr = client.parse().unwrap_or_else(|_| unreachable!());
        let s: SocketAddr = server.parse().unwrap_or_else(|_| unreachable!());
        let mut conn = HttpConn::new(stream, [c, s], Limits::default(), 16);
        let o = |frame: u64, secs: i64| Origin {
            frame,
            arrival: frame,
            ts: secs * 1_000_000_000,
        };
        conn.data(0, req, o(f, t));
        if !resp.is_empty() {
            conn.data(1, resp, o(f + 2, t));
        }
        // An unanswered request: the connection ends 30 s later.
        conn.close(o(f + 3, if resp.is_empty() { t + 30 } else { t }));
        conn.take_exchanges()
            .next()
            .unwrap_or_else(|| unreachable!())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    static REPEATING: RuleInfo = RuleInfo {
        id: "repeating",
        severity: Severity::Warning,
        title: "test",
        doc: "",
        suppress_for_ns: Some(60_000_000_000),
        explained_by_others: false,
    };

    /// Makes, on each exchange, one finding about `identifier`, at the exchange's time.
    struct Repeating;

    impl Rule for Repeating {
        fn info(&self) -> &'static RuleInfo {
            &REPEATING
        }
        fn on_exchange(&mut self, ex: &Exchange, out: &mut Vec<Finding>) {
            let t = ex.request.as_ref().map_or(0, |m| m.first_ts);
            out.push(
                crate::finding::FindingDraft {
                    rule: REPEATING.id,
                    severity: REPEATING.severity,
                    key_frame: ex.request.as_ref().map_or(0, |m| m.frame),
                    evidence: Vec::new(),
                    title: String::new(),
                    detail: String::new(),
                    remediation: String::new(),
                    time: kit::secs(t),
                    identifier: Some(ex.server.to_string()),
                }
                .build(),
            );
        }
    }

    #[test]
    fn repeats_within_the_interval_are_suppressed_and_counted() {
        let mut got = Vec::new();
        let mut keep = |f: Finding| got.push((f.key_frame, f.identifier));
        let mut set = RuleSet::new(vec![Box::new(Repeating)], &mut keep);
        let ex = |server: &str, f: u64, t: i64| {
            testing::exchange(
                "10.0.0.1:40000",
                server,
                0,
                f,
                t,
                b"GET / HTTP/1.1\r\n\r\n",
                b"HTTP/1.1 429 Too Many\r\nContent-Length: 0\r\n\r\n",
            )
        };
        // The same server at 0 s, 10 s (a repeat), 100 s (after the interval); another at 20 s.
        for (server, f, t) in [
            ("10.0.0.2:80", 1, 0),
            ("10.0.0.2:80", 5, 10),
            ("10.0.0.3:80", 9, 20),
            ("10.0.0.2:80", 13, 100),
            ("10.0.0.2:80", 17, 150),
        ] {
            set.event(Event::Exchange(&ex(server, f, t)));
        }
        assert_eq!(set.suppressed(), 2);
        drop(set);
        let frames: Vec<u64> = got.iter().map(|(f, _)| *f).collect();
        assert_eq!(frames, [1, 9, 13]);
    }
}
