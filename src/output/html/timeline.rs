//! The capture's exchanges over time, for the report: counted by answer class into time bins
//! whose width doubles whenever more than [`MAX_BINS`] would be needed, so memory stays fixed
//! however long the capture or however many its exchanges; and the hosts that exchanged
//! them, up to [`MAX_HOSTS`].

use crate::capture::TimestampNs;
use crate::flow::{ConnectionAttempt, Outcome};
use crate::http::Exchange;
use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};

/// Bins kept at most: beyond, each two neighbours merge.
pub const MAX_BINS: usize = 512;
/// The first bins are this wide (1 µs): a short capture is drawn as finely as a long one.
const FIRST_WIDTH_NS: i64 = 1_000;
/// Hosts (addresses) remembered; more are counted.
pub const MAX_HOSTS: usize = 4096;
/// Servers (address and port) whose exchanges are counted; more are counted as such.
pub const MAX_SERVERS: usize = 1024;

/// How an exchange was answered.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Class {
    /// 1xx and 2xx.
    Success = 0,
    Redirect = 1,
    ClientError = 2,
    ServerError = 3,
    /// No response in the capture.
    Unanswered = 4,
    /// A connection attempt refused, unreachable or unanswered.
    NoConnection = 5,
}

impl Class {
    pub const ALL: [Class; 6] = [
        Class::Success,
        Class::Redirect,
        Class::ClientError,
        Class::ServerError,
        Class::Unanswered,
        Class::NoConnection,
    ];

    pub fn of(status: Option<u16>) -> Class {
        match status {
            Some(300..=399) => Class::Redirect,
            Some(400..=499) => Class::ClientError,
            Some(500..) => Class::ServerError,
            Some(_) => Class::Success,
            None => Class::Unanswered,
        }
    }

    /// Its CSS class and its name in the legend.
    pub fn name(self) -> (&'static str, &'static str) {
        match self {
            Class::Success => ("s2xx", "1xx/2xx"),
            Class::Redirect => ("s3xx", "3xx"),
            Class::ClientError => ("s4xx", "4xx"),
            Class::ServerError => ("s5xx", "5xx"),
            Class::Unanswered => ("snone", "no response"),
            Class::NoConnection => ("sconn", "connection failed"),
        }
    }
}

/// Exchanges over time, by class.
#[derive(Clone, Debug)]
pub struct Timeline {
    width_ns: i64,
    /// Bin index (time / width) to counts by class.
    bins: BTreeMap<i64, [u64; 6]>,
    pub exchanges: u64,
    /// Failed connection attempts.
    pub failed_attempts: u64,
    /// Exchanges (and failed attempts) by class.
    pub totals: [u64; 6],
    hosts: Vec<IpAddr>,
    /// Hosts not remembered ([`MAX_HOSTS`]).
    pub hosts_beyond: u64,
    /// Exchanges per server.
    servers: BTreeMap<SocketAddr, u64>,
    /// Exchanges with servers not counted one by one ([`MAX_SERVERS`]).
    pub servers_beyond: u64,
}

impl Default for Timeline {
    fn default() -> Timeline {
        Timeline {
            width_ns: FIRST_WIDTH_NS,
            bins: BTreeMap::new(),
            exchanges: 0,
            failed_attempts: 0,
            totals: [0; 6],
            hosts: Vec::new(),
            hosts_beyond: 0,
            servers: BTreeMap::new(),
            servers_beyond: 0,
        }
    }
}

impl Timeline {
    /// Counts a connection attempt that failed (refused, unreachable, unanswered) at its
    /// first SYN, and its hosts.
    pub fn attempt(&mut self, a: &ConnectionAttempt) {
        for ip in [a.client.ip(), a.server.ip()] {
            self.host(ip);
        }
        if a.outcome != Outcome::Answered {
            self.add(a.first_syn_ts, Class::NoConnection);
            self.failed_attempts += 1;
        }
    }

    /// Counts an exchange at its request's first byte (or its response's, without one).
    pub fn exchange(&mut self, ex: &Exchange) {
        let Some(ts) = ex
            .request
            .as_ref()
            .map(|m| m.first_ts)
            .or(ex.response.as_ref().map(|m| m.first_ts))
        else {
            return;
        };
        let class = Class::of(ex.response.as_ref().and_then(|m| m.status()));
        self.add(ts, class);
        for ip in [ex.client.ip(), ex.server.ip()] {
            self.host(ip);
        }
        let room = self.servers.len() < MAX_SERVERS;
        match self.servers.get_mut(&ex.server) {
            Some(n) => *n += 1,
            None if room => {
                self.servers.insert(ex.server, 1);
            }
            None => self.servers_beyond += 1,
        }
    }

    fn host(&mut self, ip: IpAddr) {
        if let Err(at) = self.hosts.binary_search(&ip) {
            if self.hosts.len() < MAX_HOSTS {
                self.hosts.insert(at, ip);
            } else {
                self.hosts_beyond += 1;
            }
        }
    }

    /// Counts one item of `class` at `ts`.
    pub fn add(&mut self, ts: TimestampNs, class: Class) {
        if class != Class::NoConnection {
            self.exchanges += 1;
        }
        if let Some(t) = self.totals.get_mut(class as usize) {
            *t += 1;
        }
        let counts = self
            .bins
            .entry(ts.div_euclid(self.width_ns))
            .or_insert([0; 6]);
        if let Some(c) = counts.get_mut(class as usize) {
            *c += 1;
        }
        while self.bins.len() > MAX_BINS {
            self.width_ns = self.width_ns.saturating_mul(2);
            let old = std::mem::take(&mut self.bins);
            for (i, c) in old {
                let merged = self.bins.entry(i.div_euclid(2)).or_insert([0; 6]);
                for (m, n) in merged.iter_mut().zip(c) {
                    *m += n;
                }
            }
        }
    }

    /// Hosts seen in exchanges (a lower bound when `hosts_beyond` is not 0).
    pub fn hosts(&self) -> usize {
        self.hosts.len()
    }

    /// The servers with the most exchanges, at most `n`, most first.
    pub fn top_servers(&self, n: usize) -> Vec<(SocketAddr, u64)> {
        let mut v: Vec<(SocketAddr, u64)> = self.servers.iter().map(|(a, n)| (*a, *n)).collect();
        v.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
        v.truncate(n);
        v
    }

    /// The counts in at most `most` equal spans covering `start` to `end` (capture times),
    /// each span a whole number of bins (so that no bar holds one bin more than its
    /// neighbour): the first span's start, the spans' length, and each span's counts by
    /// class.
    pub fn bars(
        &self,
        start: TimestampNs,
        end: TimestampNs,
        most: usize,
    ) -> (TimestampNs, TimestampNs, Vec<[u64; 6]>) {
        let w = self.width_ns.max(1);
        let first = start.div_euclid(w);
        let last = end.div_euclid(w);
        let bins = last.saturating_sub(first).saturating_add(1).max(1);
        let most = most.max(1) as i64;
        let per_bar = (bins.saturating_add(most - 1) / most).max(1);
        let span = w.saturating_mul(per_bar);
        let origin = first.saturating_mul(w);
        let count = (bins.saturating_add(per_bar - 1) / per_bar).clamp(1, most) as usize;
        let mut out = vec![[0u64; 6]; count];
        for (i, c) in &self.bins {
            let x = i
                .saturating_sub(first)
                .div_euclid(per_bar)
                .clamp(0, count as i64 - 1) as usize;
            if let Some(o) = out.get_mut(x) {
                for (m, n) in o.iter_mut().zip(c) {
                    *m += n;
                }
            }
        }
        (origin, span, out)
    }

    /// The earliest and the latest bin's start.
    pub fn range(&self) -> Option<(TimestampNs, TimestampNs)> {
        let first = self.bins.keys().next()?;
        let last = self.bins.keys().next_back()?;
        Some((
            first.saturating_mul(self.width_ns),
            last.saturating_mul(self.width_ns)
                .saturating_add(self.width_ns),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bins_merge_and_nothing_is_lost() {
        let mut t = Timeline::default();
        for i in 0..1_000_000i64 {
            t.add(
                1_000_000_000_000 + i * 3_000_000,
                Class::of(Some(200 + (i % 4) as u16 * 100)),
            );
        }
        assert!(t.bins.len() <= MAX_BINS);
        assert_eq!(t.exchanges, 1_000_000);
        let (a, b) = t.range().unwrap_or_default();
        let (_, _, bars) = t.bars(a, b, 100);
        assert!(bars.len() <= 100);
        let sum: u64 = bars.iter().flatten().sum();
        assert_eq!(sum, 1_000_000);
        assert_eq!(t.totals[Class::ServerError as usize], 250_000);
    }

    #[test]
    fn times_before_the_first_are_kept() {
        let mut t = Timeline::default();
        t.add(5_000_000_000, Class::Success);
        t.add(1_000_000_000, Class::ServerError);
        let (origin, span, bars) = t.bars(0, 10_000_000_000, 10);
        assert_eq!(origin, 0);
        assert!((1_000_000_000..1_100_000_000).contains(&span), "{span}");
        assert_eq!(bars[0][Class::ServerError as usize], 1);
        assert_eq!(bars[4][Class::Success as usize], 1);
    }
}
