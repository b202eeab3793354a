//! Referrals: a URL an answer sent the client to (a token realm in a 401, an upload `Location`
//! in a 202), watched until the client connects to it, fails to, or the watch expires. What a
//! failure looks like (a reset, an ICMP unreachable, SYNs with no answer) is the same for every
//! rule that follows a URL; what it means is the rule's.

use super::bounded::Bounded;
use super::url::Url;
use crate::capture::TimestampNs;
use crate::flow::{ConnectionAttempt, Outcome};
use crate::http::Exchange;
use std::cell::Cell;
use std::net::{IpAddr, SocketAddr};
use std::ops::{Deref, DerefMut};

/// A referral is followed by the client's connection to it within this time.
pub const FOLLOW_NS: TimestampNs = 120_000_000_000;
/// Unanswered SYNs are conclusive this long after the first one (two or more SYNs sent): past
/// the first retransmission (1 s); SYNs sent after it are not part of the evidence, so that a
/// live watch and a later analysis of its file show the same frames.
pub const SYN_WAIT_NS: TimestampNs = 2_500_000_000;

/// A URL given to a client, and what became of it.
#[derive(Debug)]
pub struct Referral<T> {
    /// The exchange whose answer named the URL.
    pub ex: Exchange,
    pub client: IpAddr,
    pub url: Url,
    /// `host[:port]` of the URL, as a `Host` header names it.
    authority: String,
    /// The URL's address, when it names an IP address.
    pub target: Option<SocketAddr>,
    /// When the answer ended.
    pub ts: TimestampNs,
    pub reported: bool,
    pub reached: bool,
    /// An unanswered attempt being watched.
    pending: Option<ConnectionAttempt>,
    /// The rule's own.
    pub data: T,
}

impl<T> Referral<T> {
    /// A referral to `url`, named by the answer of `ex` (which ended at `ts`).
    pub fn new(ex: &Exchange, url: Url, ts: TimestampNs, data: T) -> Referral<T> {
        let target = url
            .host
            .parse::<IpAddr>()
            .ok()
            .map(|ip| SocketAddr::new(ip, url.port));
        Referral {
            client: ex.client.ip(),
            ex: ex.clone(),
            authority: url.authority(),
            url,
            target,
            ts,
            reported: false,
            reached: false,
            pending: None,
            data,
        }
    }

    /// Whether the referral still waits for the client.
    pub fn open(&self) -> bool {
        !self.reported && !self.reached
    }

    /// Whether `a` is the client connecting to the URL.
    fn matches(&self, a: &ConnectionAttempt) -> bool {
        let ts = a.first_syn_ts;
        a.client.ip() == self.client
            && ts.saturating_add(1_000_000_000) >= self.ts
            && ts <= self.ts.saturating_add(FOLLOW_NS)
            && match self.target {
                Some(t) => a.server == t,
                // A URL given by name: any connection to its port that is not to the server
                // that gave it.
                None => a.server.port() == self.url.port && a.server != self.ex.server,
            }
    }

    /// Whether a request of `ex` goes to the URL's endpoint (checked on every exchange of the
    /// client while the referral is open: the address first, the `Host` only when it is not).
    pub fn is_request_to(&self, ex: &Exchange) -> bool {
        match self.target {
            Some(t) => ex.server == t && ex.client.ip() == self.client,
            None => {
                ex.server.port() == self.url.port
                    && ex.client.ip() == self.client
                    && ex.request.as_ref().is_some_and(|r| {
                        r.header("host")
                            .is_some_and(|h| h.eq_ignore_ascii_case(self.authority.as_bytes()))
                    })
            }
        }
    }
}

/// How a client failed to connect to a referral's URL.
pub fn failure_words(a: &ConnectionAttempt) -> String {
    match a.outcome {
        Outcome::Refused => "its SYN was answered by a reset".to_string(),
        Outcome::Unreachable => match a.icmp_says {
            Some(says) => format!("an ICMP destination-unreachable came back ({says})"),
            None => "an ICMP destination-unreachable came back".to_string(),
        },
        _ => format!(
            "{} SYNs over {:.1} s, no SYN-ACK, no reset",
            a.syn_count,
            a.last_syn_ts.saturating_sub(a.first_syn_ts) as f64 / 1e9
        ),
    }
}

/// Referrals being watched, at most [`crate::rules::MAX_RULE_STATE`].
#[derive(Debug)]
pub struct Referrals<T> {
    items: Bounded<Referral<T>>,
    /// [`Referrals::next_deadline`] as last computed; `None` once anything may have changed
    /// (it is asked after every event a rule is called for, and most change nothing).
    deadline: Cell<Option<Option<TimestampNs>>>,
}

impl<T> Default for Referrals<T> {
    fn default() -> Self {
        Referrals {
            items: Bounded::default(),
            deadline: Cell::new(None),
        }
    }
}

impl<T> Deref for Referrals<T> {
    type Target = Bounded<Referral<T>>;
    fn deref(&self) -> &Bounded<Referral<T>> {
        &self.items
    }
}

impl<T> DerefMut for Referrals<T> {
    fn deref_mut(&mut self) -> &mut Bounded<Referral<T>> {
        self.deadline.set(None);
        &mut self.items
    }
}

impl<T> Referrals<T> {
    /// The open referrals `ex` is a request to (asked of every exchange while one is open:
    /// looked for first without counting as a change).
    pub fn requested(&mut self, ex: &Exchange) -> impl Iterator<Item = &mut Referral<T>> {
        let any = self.items.iter().any(|r| r.open() && r.is_request_to(ex));
        if any {
            self.deadline.set(None);
        }
        self.items
            .iter_mut()
            .take(if any { usize::MAX } else { 0 })
            .filter(|r| r.open() && r.is_request_to(ex))
    }

    /// A SYN was retransmitted: the attempt is watched, with the SYNs sent before its deadline.
    pub fn on_attempt_progress(&mut self, a: &ConnectionAttempt) {
        self.deadline.set(None);
        for r in self.items.iter_mut().filter(|r| r.open()) {
            if r.matches(a) && a.last_syn_ts < a.first_syn_ts.saturating_add(SYN_WAIT_NS) {
                r.pending = Some(a.clone());
            }
        }
    }

    /// An attempt was resolved: `failed` is called for each referral it fails (reset, ICMP,
    /// or SYNs retransmitted and never answered until the flow ended).
    pub fn on_attempt(
        &mut self,
        a: &ConnectionAttempt,
        mut failed: impl FnMut(&mut Referral<T>, &ConnectionAttempt),
    ) {
        self.deadline.set(None);
        for r in self.items.iter_mut().filter(|r| r.open()) {
            if !r.matches(a) {
                continue;
            }
            let pending = r.pending.take();
            match a.outcome {
                Outcome::Answered => r.reached = true,
                Outcome::Refused | Outcome::Unreachable => failed(r, a),
                Outcome::NoAnswer if a.syn_count >= 2 => failed(r, pending.as_ref().unwrap_or(a)),
                Outcome::NoAnswer => {}
            }
        }
    }

    pub fn next_deadline(&self) -> Option<TimestampNs> {
        if let Some(d) = self.deadline.get() {
            return d;
        }
        let d = self
            .items
            .iter()
            .map(|r| {
                let expiry = r.ts.saturating_add(FOLLOW_NS);
                r.pending.as_ref().map_or(expiry, |a| {
                    expiry.min(a.first_syn_ts.saturating_add(SYN_WAIT_NS))
                })
            })
            .min();
        self.deadline.set(Some(d));
        d
    }

    /// Unanswered attempts whose deadline has come are failures; referrals the client never
    /// followed expire.
    pub fn on_tick(
        &mut self,
        now: TimestampNs,
        mut failed: impl FnMut(&mut Referral<T>, &ConnectionAttempt),
    ) {
        self.deadline.set(None);
        for r in self.items.iter_mut().filter(|r| r.open()) {
            if let Some(a) = r.pending.take() {
                if now >= a.first_syn_ts.saturating_add(SYN_WAIT_NS) && a.syn_count >= 2 {
                    failed(r, &a);
                } else {
                    r.pending = Some(a);
                }
            }
        }
        self.items
            .retain(|r| r.pending.is_some() || (r.open() && now < r.ts.saturating_add(FOLLOW_NS)));
    }

    /// The end of the input: attempts with a retransmitted SYN still unanswered are failures.
    pub fn finish(&mut self, mut failed: impl FnMut(&mut Referral<T>, &ConnectionAttempt)) {
        self.deadline.set(None);
        for r in self.items.iter_mut() {
            if let Some(a) = r.pending.take()
                && r.open()
                && a.syn_count >= 2
            {
                failed(r, &a);
            }
        }
        self.items.clear();
    }
}
