//! S3 error answers grouped per S3 client, endpoint and cause (an SDK's retries of one request
//! make one group), each waiting until no retry has come for [`SETTLE_NS`] of capture time, and
//! the 5xx the S3 client (the registry) answered its own client around them: what the S3
//! error did to the registry's client.

use super::evidence::{exchange_evidence, request_line};
use super::waiting::Waiting;
use crate::capture::TimestampNs;
use crate::finding::Evidence;
use crate::http::Exchange;
use std::collections::VecDeque;
use std::net::{IpAddr, SocketAddr};

/// Retries are grouped, and the registry's 5xx awaited, this long after the last error.
pub const SETTLE_NS: TimestampNs = 10_000_000_000;
/// A 5xx from the S3 client counts as caused by the S3 errors when it ends within this window
/// around them.
pub const CORRELATE_NS: TimestampNs = 60_000_000_000;
/// Answers kept per group (the count goes on).
pub const MAX_ANSWERS: usize = 32;
/// Recent 5xx answers kept for a group that starts after them.
pub const MAX_RECENT_5XX: usize = 64;

/// Errors of one S3 client from one endpoint, for one cause `K`; `A` is what a rule keeps of
/// each answer.
#[derive(Debug)]
pub struct S3Group<K, A> {
    pub s3_client: IpAddr,
    pub endpoint: SocketAddr,
    pub key: K,
    pub first_ts: TimestampNs,
    pub last_ts: TimestampNs,
    /// At most [`MAX_ANSWERS`].
    pub answers: Vec<A>,
    /// Answers in the group (may exceed `answers.len()`).
    pub count: usize,
    /// The S3 client's own failed exchange: its request and 5xx.
    pub caused: Option<Exchange>,
}

impl<K, A> S3Group<K, A> {
    /// Says in `detail` what the errors did to the S3 client's own client: the 5xx it answered
    /// (with `answered`, "answered" or "then answered"; its exchange joins `evidence`), or
    /// `none` when the capture shows none.
    pub fn tell_caused(
        &self,
        answered: &str,
        none: &str,
        detail: &mut String,
        evidence: &mut Vec<Evidence>,
    ) {
        match self
            .caused
            .as_ref()
            .and_then(|c| Some((c, c.request.as_ref()?, c.response.as_ref()?)))
        {
            Some((c, req, resp)) => {
                detail.push_str(&format!(
                    " The S3 client, {} (the registry), {answered} its own client {} {} for {} (frame {}).",
                    c.server,
                    c.client.ip(),
                    resp.status().unwrap_or(0),
                    request_line(req, 80),
                    resp.frame
                ));
                evidence.extend(super::evidence::named(
                    exchange_evidence(c, "registry request", "registry answer"),
                    c.server,
                    "registry",
                ));
            }
            None => detail.push_str(none),
        }
    }

    /// Whether `ex` is a 5xx sent by the group's S3 client around the time of its errors.
    fn caused_by(&self, ex: &Exchange) -> bool {
        let (Some(req), Some(resp)) = (&ex.request, &ex.response) else {
            return false;
        };
        ex.server.ip() == self.s3_client
            && resp.status().is_some_and(|s| s >= 500)
            && req.first_ts <= self.last_ts
            && resp.end_ts.saturating_add(CORRELATE_NS) >= self.first_ts
            && resp.end_ts <= self.last_ts.saturating_add(CORRELATE_NS)
    }
}

/// Open groups and recent 5xx answers, bounded.
#[derive(Debug)]
pub struct S3Groups<K, A> {
    groups: Waiting<S3Group<K, A>>,
    recent_5xx: VecDeque<Exchange>,
    dropped: u64,
}

impl<K: PartialEq, A> Default for S3Groups<K, A> {
    fn default() -> Self {
        S3Groups {
            groups: Waiting::new(|g| g.last_ts.saturating_add(SETTLE_NS)),
            recent_5xx: VecDeque::new(),
            dropped: 0,
        }
    }
}

impl<K: PartialEq, A> S3Groups<K, A> {
    /// The S3 request of `ex` failed for the cause `key`; `answer` is what the rule keeps. A
    /// group pushed out of a full table is given back, to be reported at once.
    pub fn add(&mut self, ex: &Exchange, key: K, answer: A) -> Option<S3Group<K, A>> {
        let (Some(req), Some(resp)) = (&ex.request, &ex.response) else {
            return None;
        };
        let now = resp.end_ts;
        let client = ex.client.ip();
        let mut evicted = None;
        let idx = match self.groups.iter().position(|g| {
            g.s3_client == client
                && g.endpoint == ex.server
                && g.key == key
                && now <= g.last_ts.saturating_add(SETTLE_NS)
        }) {
            Some(i) => i,
            None => {
                evicted = self.groups.push(S3Group {
                    s3_client: client,
                    endpoint: ex.server,
                    key,
                    first_ts: req.first_ts,
                    last_ts: now,
                    answers: Vec::new(),
                    count: 0,
                    caused: None,
                });
                self.groups.len() - 1
            }
        };
        if let Some(g) = self.groups.get_mut(idx) {
            g.last_ts = now;
            g.count += 1;
            if g.answers.len() < MAX_ANSWERS {
                g.answers.push(answer);
            }
            if g.caused.is_none()
                && let Some(c) = self.recent_5xx.iter().find(|c| g.caused_by(c))
            {
                g.caused = Some(c.clone());
            }
        }
        evicted
    }

    /// Any other exchange: a 5xx of an S3 client completes its open group (given back, to be
    /// reported now), or is kept for a group that starts after it.
    pub fn other(&mut self, ex: &Exchange) -> Option<S3Group<K, A>> {
        if ex
            .response
            .as_ref()
            .and_then(|r| r.status())
            .is_none_or(|s| s < 500)
        {
            return None;
        }
        if let Some(i) = self
            .groups
            .iter()
            .position(|g| g.caused.is_none() && g.caused_by(ex))
        {
            let mut g = self.groups.remove(i)?;
            g.caused = Some(ex.clone());
            return Some(g);
        }
        if self.recent_5xx.len() >= MAX_RECENT_5XX {
            self.recent_5xx.pop_front();
            self.dropped += 1;
        }
        self.recent_5xx.push_back(ex.clone());
        None
    }

    pub fn next_deadline(&self) -> Option<TimestampNs> {
        self.groups.next()
    }

    /// Groups no retry has come to for [`SETTLE_NS`]; old 5xx answers are forgotten.
    pub fn take_due(&mut self, now: TimestampNs) -> Vec<S3Group<K, A>> {
        self.recent_5xx.retain(|c| {
            c.response
                .as_ref()
                .is_some_and(|r| r.end_ts.saturating_add(CORRELATE_NS) >= now)
        });
        self.groups.take_due(now)
    }

    /// Every open group (the end of the input).
    pub fn drain(&mut self) -> Vec<S3Group<K, A>> {
        self.groups.drain()
    }

    /// Groups and 5xx answers dropped because a table was full.
    pub fn dropped(&self) -> u64 {
        self.groups.dropped() + self.dropped
    }

    /// 5xx answers kept (for tests).
    pub fn recent_5xx(&self) -> usize {
        self.recent_5xx.len()
    }
}
