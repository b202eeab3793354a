//! Rules: small modules on one engine. Each receives completed HTTP exchanges and connection
//! attempts as they happen, keeps its own bounded state, and emits a [`Finding`] as soon as its
//! evidence is conclusive, so the same rules serve files and live capture. Time is capture
//! time, passed by [`Rule::tick`]; a rule that waits for more evidence (retries, the
//! registry's own 500) does so until a deadline in capture time, never until the end.

pub mod auth_realm_unreachable;
pub mod blob_upload_unknown;
pub mod kit;
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
pub mod token_expired;
pub mod transfer_reset;
pub mod upload_location_unreachable;

use crate::capture::TimestampNs;
use crate::engine::{Event, Sink};
use crate::finding::{Finding, Severity};
use crate::flow::{ConnRecord, ConnectionAttempt, Ending};
use crate::http::Exchange;

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
    pub new: fn() -> Box<dyn Rule>,
}

/// Every rule, in the order they run and are listed. Adding a rule is one line here (and its
/// `mod` line above).
pub static RULES: &[Entry] = &[
    Entry {
        info: &s3_error_not_xml::INFO,
        new: || Box::new(s3_error_not_xml::S3ErrorNotXml::default()),
    },
    Entry {
        info: &s3_clock_skew::INFO,
        new: || Box::new(s3_clock_skew::S3ClockSkew::default()),
    },
    Entry {
        info: &s3_error::INFO,
        new: || Box::new(s3_error::S3ErrorRule::default()),
    },
    Entry {
        info: &presigned_url_403::INFO,
        new: || Box::new(presigned_url_403::PresignedUrl403::default()),
    },
    Entry {
        info: &auth_realm_unreachable::INFO,
        new: || Box::new(auth_realm_unreachable::AuthRealmUnreachable::default()),
    },
    Entry {
        info: &upload_location_unreachable::INFO,
        new: || Box::new(upload_location_unreachable::UploadLocationUnreachable::default()),
    },
    Entry {
        info: &proxy_body_too_large::INFO,
        new: || Box::new(proxy_body_too_large::ProxyBodyTooLarge),
    },
    Entry {
        info: &proxy_error_page::INFO,
        new: || Box::new(proxy_error_page::ProxyErrorPage::default()),
    },
    Entry {
        info: &rate_limited::INFO,
        new: || Box::new(rate_limited::RateLimited),
    },
    Entry {
        info: &registry_api_version_missing::INFO,
        new: || Box::new(registry_api_version_missing::RegistryApiVersionMissing::default()),
    },
    Entry {
        info: &token_expired::INFO,
        new: || Box::new(token_expired::TokenExpired::default()),
    },
    Entry {
        info: &blob_upload_unknown::INFO,
        new: || Box::new(blob_upload_unknown::BlobUploadUnknown::default()),
    },
    Entry {
        info: &transfer_reset::INFO,
        new: || Box::new(transfer_reset::TransferReset::default()),
    },
    Entry {
        info: &tcp_connect_refused::INFO,
        new: || Box::new(tcp_connect_refused::TcpConnectRefused::default()),
    },
    Entry {
        info: &tcp_connect_unanswered::INFO,
        new: || Box::new(tcp_connect_unanswered::TcpConnectUnanswered::default()),
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
    Ok(RULES
        .iter()
        .filter(|r| only.is_empty() || only.iter().any(|o| o == r.info.id))
        .map(|r| (r.new)())
        .collect())
}

/// The rules behind the engine: an engine [`Sink`] that runs every rule on every event and
/// passes findings (and exchanges) on.
pub struct RuleSet<'a> {
    rules: Vec<Box<dyn Rule>>,
    findings: Vec<Finding>,
    /// Findings reported with an identifier: rule, identifier, capture time (seconds).
    reported: kit::Bounded<(&'static str, String, f64)>,
    suppressed: u64,
    /// Evidence frames of the findings reported by rules that explain others.
    explaining: kit::Bounded<Vec<u64>>,
    next_deadline: Option<TimestampNs>,
    on_finding: &'a mut dyn FnMut(Finding),
}

impl<'a> RuleSet<'a> {
    pub fn new(rules: Vec<Box<dyn Rule>>, on_finding: &'a mut dyn FnMut(Finding)) -> RuleSet<'a> {
        RuleSet {
            rules,
            findings: Vec::new(),
            reported: kit::Bounded::default(),
            suppressed: 0,
            explaining: kit::Bounded::default(),
            next_deadline: None,
            on_finding,
        }
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
        self.next_deadline = self.rules.iter().filter_map(|r| r.next_deadline()).min();
    }

    /// Whether `f` is of a rule [`RuleInfo::explained_by_others`] and another rule's finding
    /// already has its key frame as evidence; the evidence of a finding of any other rule is
    /// remembered.
    fn explained(&mut self, f: &Finding) -> bool {
        let yields = self
            .rules
            .iter()
            .find(|r| r.info().id == f.rule)
            .is_some_and(|r| r.info().explained_by_others);
        if yields {
            self.explaining
                .iter()
                .any(|frames| frames.binary_search(&f.key_frame).is_ok())
        } else {
            if self.rules.iter().any(|r| r.info().explained_by_others) {
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
            .find(|r| r.info().id == f.rule)
            .and_then(|r| r.info().suppress_for_ns)
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
        self.suppressed + self.rules.iter().map(|r| r.suppressed()).sum::<u64>()
    }

    /// `limits` with what the rules need of the layers below them turned on (connection
    /// records when a rule reads them).
    pub fn configure(&self, mut limits: crate::engine::Limits) -> crate::engine::Limits {
        limits.flow.records |= self.rules.iter().any(|r| r.wants_conn_records());
        limits
    }

    /// Rule-state items dropped because a table was full.
    pub fn state_dropped(&self) -> u64 {
        self.rules.iter().map(|r| r.state_dropped()).sum()
    }
}

impl Sink for RuleSet<'_> {
    /// Every rule's hook for the event, then the findings made, in key-frame order.
    fn event(&mut self, ev: Event<'_>) {
        if let Event::Tick(now) = ev
            && self.next_deadline.is_none_or(|d| now < d)
        {
            return;
        }
        let out = &mut self.findings;
        for r in &mut self.rules {
            match ev {
                Event::Exchange(ex) => r.on_exchange(ex, out),
                Event::Attempt(a) => r.on_attempt(a, out),
                Event::AttemptProgress(a) => r.on_attempt_progress(a, out),
                Event::ConnEnd(c) => r.on_conn_end(c, out),
                Event::CutShort(e) => r.on_cut_short(e, out),
                Event::Tick(now) => r.on_tick(now, out),
                Event::Finish => r.finish(out),
            }
        }
        self.flush();
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
