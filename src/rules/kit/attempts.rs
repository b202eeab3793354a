//! Failed connection attempts, grouped per client and service (a client's parallel or
//! immediate retries make one finding), and what the capture says the client was trying to
//! reach at an address (a `Host` it sent there before, a `Location` or realm that named it).

use super::bounded::Bounded;
use super::repeats::Repeats;
use super::url::Url;
use super::waiting::Waiting;
use crate::capture::TimestampNs;
use crate::finding::{Evidence, Party};
use crate::flow::ConnectionAttempt;
use crate::http::Exchange;
use crate::rules::Interest;
use crate::text::lossless;
use rustc_hash::FxHashMap;
use std::cell::{Cell, RefCell};
use std::net::{IpAddr, SocketAddr};
use std::rc::Rc;

/// Attempts of one group kept for evidence (the count goes on).
pub const MAX_GROUP_ATTEMPTS: usize = 8;
/// A group stays open this long after its first failure, for parallel attempts and immediate
/// retries to join it.
pub const COLLECT_NS: TimestampNs = 2_000_000_000;

/// Failed attempts of one client to one service.
#[derive(Debug)]
pub struct Group {
    pub client: IpAddr,
    pub server: SocketAddr,
    /// The attempts, at most [`MAX_GROUP_ATTEMPTS`].
    pub attempts: Vec<ConnectionAttempt>,
    /// Attempts in the group (may exceed `attempts.len()`).
    pub count: u32,
    /// When the first attempt failed (capture time).
    pub failed_ts: TimestampNs,
}

impl Group {
    pub fn first(&self) -> Option<&ConnectionAttempt> {
        self.attempts.first()
    }

    /// SYNs sent over all attempts kept.
    pub fn syns(&self) -> u32 {
        self.attempts.iter().map(|a| a.syn_count).sum()
    }

    /// Every SYN, reset and ICMP frame of the attempts kept, with what each is.
    /// What a finding about the group says after its cause: what the client was trying to
    /// reach (when the capture says), how many attempts the evidence shows, and that further
    /// `outcome` ("refused", "unanswered") attempts are counted.
    pub fn context(&self, named: Option<&Named>, outcome: &str) -> String {
        let mut s = match named {
            Some(n) => format!(" The client was trying to reach {}.", n.what),
            None => " The capture does not show what the client meant to reach there (no earlier request to this address, \
                      no Location or realm naming it)."
                .to_string(),
        };
        if self.count as usize > self.attempts.len() {
            s.push_str(&format!(
                " The evidence shows the first {} attempts.",
                self.attempts.len()
            ));
        }
        s.push_str(&format!(
            " Further {outcome} attempts from this client to this service within a minute are counted, not repeated."
        ));
        s
    }

    pub fn evidence(&self, target: &str) -> Vec<Evidence> {
        let mut v = Vec::new();
        for (n, a) in self.attempts.iter().enumerate() {
            let first = if n == 0 {
                format!("SYN to {target} {} from {}", a.server, a.client)
            } else {
                format!("SYN again, attempt #{} (port {})", n + 1, a.client.port())
            };
            let reset = format!("reset from {}: nothing accepts the connection", a.server);
            v.extend(attempt_evidence(a, first, &reset));
        }
        v
    }
}

/// One attempt's frames as evidence: its SYNs (the first said `first_syn`, the others
/// retransmissions), its reset (said `reset`) and its ICMP error.
pub fn attempt_evidence(a: &ConnectionAttempt, first_syn: String, reset: &str) -> Vec<Evidence> {
    let (client, server) = (Party::client(a.client), Party::server(a.server));
    let mut v: Vec<Evidence> = a
        .syn_frames
        .iter()
        .enumerate()
        .map(|(i, f)| {
            let ts = a.syn_time(i);
            let (what, label) = if i == 0 {
                (first_syn.clone(), "SYN".to_string())
            } else {
                (
                    format!("SYN retransmitted (#{})", i + 1),
                    format!("SYN #{} (retransmitted)", i + 1),
                )
            };
            Evidence::packet(*f, Some(a.stream), (client, server), ts, what, label)
        })
        .collect();
    if let Some(frame) = a.rst_frame {
        v.push(Evidence::packet(
            frame,
            Some(a.stream),
            (server, client),
            a.rst_ts,
            reset,
            "RST",
        ));
    }
    if let Some(frame) = a.icmp_frame {
        let what = "ICMP destination unreachable";
        v.push(match a.icmp_from {
            Some((ip, ts)) => Evidence::packet(
                frame,
                Some(a.stream),
                // The server's host itself (port unreachable), or a router or firewall on the
                // way.
                (
                    if ip == a.server.ip() {
                        server
                    } else {
                        Party::host(ip, "router")
                    },
                    client,
                ),
                ts,
                what,
                format!("ICMP {}", a.icmp_says.unwrap_or("unreachable")),
            ),
            None => Evidence::note(frame, Some(a.stream), what),
        });
    }
    v
}

/// Recent attempts remembered, answered or not: a sliding window (older ones age out by design,
/// they are not state lost).
pub const RECENT_ATTEMPTS: usize = 256;
/// A client that tried this many ports of one host within [`SCAN_WINDOW_NS`] is probing it (a
/// port scan, a service discovery), not failing to reach a service.
pub const SCAN_PORTS: usize = 3;
pub const SCAN_WINDOW_NS: TimestampNs = 60_000_000_000;

/// An attempt as remembered in the recent window.
#[derive(Debug, Clone, Copy)]
struct Seen {
    client: IpAddr,
    server: SocketAddr,
    ts: TimestampNs,
    answered: bool,
}

/// Groups of failed attempts waiting for their collection time to end; a group that repeats a
/// reported one within the rule's interval is counted instead, and so is a group that is not a
/// failure to reach a service: a fallback (the same client then connected to the same port at
/// another address, as a dual-stack client does after `localhost` resolves to `::1` first) or a
/// port scan ([`SCAN_PORTS`] ports of one host tried).
#[derive(Debug)]
pub struct AttemptGroups {
    open: Waiting<Group>,
    repeats: Repeats<(IpAddr, SocketAddr)>,
    recent: std::collections::VecDeque<Seen>,
    /// Streams whose attempt is already in a group (an attempt concluded early is not added
    /// again when its flow ends), the latest [`RECENT_ATTEMPTS`].
    added: std::collections::VecDeque<u64>,
    /// Groups left unreported as a fallback or a scan.
    pub not_failures: u64,
}

impl AttemptGroups {
    /// Groups whose repeats within `window` (a rule's `suppress_for_ns`) are counted.
    pub fn new(window: Option<TimestampNs>) -> AttemptGroups {
        AttemptGroups {
            open: Waiting::new(|g| g.failed_ts.saturating_add(COLLECT_NS)),
            repeats: Repeats::new(window),
            recent: std::collections::VecDeque::new(),
            added: std::collections::VecDeque::new(),
            not_failures: 0,
        }
    }

    /// Every resolved attempt, answered or not, passes here (fallbacks and scans are told by
    /// them).
    pub fn seen(&mut self, a: &ConnectionAttempt) {
        if self.recent.len() >= RECENT_ATTEMPTS {
            self.recent.pop_front();
        }
        self.recent.push_back(Seen {
            client: a.client.ip(),
            server: a.server,
            ts: a.first_syn_ts,
            answered: a.outcome == crate::flow::Outcome::Answered,
        });
    }

    /// Whether `g` is a failure to reach a service, not a fallback or a scan.
    fn is_failure(&self, g: &Group) -> bool {
        let fallback = self.recent.iter().any(|s| {
            s.answered
                && s.ts >= g.failed_ts.saturating_sub(COLLECT_NS)
                && s.server.port() == g.server.port()
                && s.server.ip() != g.server.ip()
                && (s.client == g.client || s.client.is_ipv4() != g.client.is_ipv4())
        });
        let mut ports: Vec<u16> = self
            .recent
            .iter()
            .filter(|s| {
                s.client == g.client
                    && s.server.ip() == g.server.ip()
                    && s.ts.abs_diff(g.failed_ts) <= SCAN_WINDOW_NS as u64
            })
            .map(|s| s.server.port())
            .collect();
        ports.sort_unstable();
        ports.dedup();
        !fallback && ports.len() < SCAN_PORTS
    }

    fn failures(&mut self, groups: Vec<Group>) -> Vec<Group> {
        let (keep, drop): (Vec<Group>, Vec<Group>) =
            groups.into_iter().partition(|g| self.is_failure(g));
        self.not_failures += drop.len() as u64;
        keep
    }

    /// `a` failed at `now`: it joins its open group, or opens one, or is a counted repeat.
    /// A group pushed out of a full table is given back, to be reported at once.
    pub fn add(&mut self, a: &ConnectionAttempt, now: TimestampNs) -> Option<Group> {
        if self.added.contains(&a.stream) {
            return None;
        }
        if self.added.len() >= RECENT_ATTEMPTS {
            self.added.pop_front();
        }
        self.added.push_back(a.stream);
        let key = (a.client.ip(), a.server);
        if let Some(g) = self.open.iter_mut().find(|g| (g.client, g.server) == key) {
            g.count = g.count.saturating_add(1);
            if g.attempts.len() < MAX_GROUP_ATTEMPTS {
                g.attempts.push(a.clone());
            }
            return None;
        }
        if self.repeats.repeats(&key, now) {
            return None;
        }
        self.repeats.report(key, now);
        let evicted = self.open.push(Group {
            client: key.0,
            server: key.1,
            attempts: vec![a.clone()],
            count: 1,
            failed_ts: now,
        })?;
        self.failures(vec![evicted]).pop()
    }

    pub fn next_deadline(&self) -> Option<TimestampNs> {
        self.open.next()
    }

    /// Groups whose collection time is over (failures only).
    pub fn take_due(&mut self, now: TimestampNs) -> Vec<Group> {
        let due = self.open.take_due(now);
        self.failures(due)
    }

    /// Every open group (the end of the input; failures only).
    pub fn drain(&mut self) -> Vec<Group> {
        let all = self.open.drain();
        self.failures(all)
    }

    /// Repeats, fallbacks and scans counted, not reported.
    pub fn repeats(&self) -> u64 {
        self.repeats.count + self.not_failures
    }

    /// Groups and reports dropped because a table was full.
    pub fn dropped(&self) -> u64 {
        self.open.dropped() + self.repeats.dropped()
    }
}

/// A name for an address, and the frame that gives it.
#[derive(Debug, Clone)]
pub struct Named {
    /// "`registry.example:5000` (the Host of frame 4)", "`http://10.0.0.2:5000/v2/...` (the
    /// Location in the 202 answer of frame 7)".
    pub what: String,
    pub frame: u64,
    /// Named by a URL an answer gave (Location, realm), not by the client's own `Host`.
    pub from_url: bool,
}

impl Named {
    /// The first step of a remediation when a URL an answer gave named the address: correct
    /// the setting behind it, `unless` ("if clients cannot reach it") it is right.
    pub fn came_from(&self, unless: &str) -> Option<String> {
        self.from_url.then(|| {
            format!(
                "The address came from {}: {unless}, correct the setting that produced frame {} (a registry's `http.host` or \
                 `auth.token.realm`, Harbor's `external_url`) so that it names the address clients use. ",
                self.what, self.frame
            )
        })
    }
}

/// What the capture says a client was trying to reach at an address, and the frame that says
/// it: the `Host` of an earlier request to it, or a `Location` or token realm whose URL names
/// it. At most [`crate::rules::MAX_RULE_STATE`] addresses; the first word on an address stays.
#[derive(Debug, Default)]
pub struct Names {
    /// Every server address seen, with its name when the capture gives one.
    names: FxHashMap<SocketAddr, Option<Named>>,
    order: Bounded<SocketAddr>,
    /// The last Location or challenge read.
    last_value: Vec<u8>,
    /// The server of the last exchange (most follow one to the same server).
    last_server: Option<SocketAddr>,
}

impl Names {
    /// Learns from one exchange: of all those that teach something, every connection's first
    /// exchange (a server address is first seen on one) and every 201, 202, 3xx and 401 answer
    /// ([`SharedNames::interest`]); other exchanges teach nothing.
    pub fn learn(&mut self, ex: &Exchange) {
        // One lookup per exchange: every server address gets an entry on its first exchange
        // (none when its Host is the address itself, which says nothing more).
        if self.last_server != Some(ex.server) && !self.names.contains_key(&ex.server) {
            let named = ex.request.as_ref().and_then(|req| {
                let host = lossless(req.header("host")?);
                (host.parse::<SocketAddr>().is_err() && host.parse::<IpAddr>().is_err()).then(
                    || Named {
                        what: format!("`{host}` (the Host of frame {})", req.frame),
                        frame: req.frame,
                        from_url: false,
                    },
                )
            });
            self.insert(ex.server, named);
        }
        self.last_server = Some(ex.server);
        let Some(resp) = &ex.response else {
            return;
        };
        let (header, what) = match resp.status() {
            Some(201 | 202 | 300..=399) => ("location", "the Location"),
            Some(401) => ("www-authenticate", "the realm"),
            _ => return,
        };
        let Some(value) = resp.header(header) else {
            return;
        };
        // A client asked again gets the same challenge or redirect: read once.
        if value == self.last_value.as_slice() {
            return;
        }
        self.last_value.clear();
        self.last_value.extend_from_slice(value);
        let value = lossless(value);
        let url = if header == "location" {
            Url::parse(&value)
        } else {
            super::auth::realm_of(&value).and_then(|r| Url::parse(&r))
        };
        let Some(url) = url else {
            return;
        };
        if let Ok(ip) = url.host.parse::<IpAddr>() {
            let at = SocketAddr::new(ip, url.port);
            if !matches!(self.names.get(&at), Some(Some(_))) {
                let full = format!("{}://{}{}", url.scheme, url.authority(), url.path());
                self.insert(
                    at,
                    Some(Named {
                        what: format!(
                            "`{}` ({what} in the {} answer of frame {})",
                            crate::text::shorten(&full, 100),
                            resp.status().unwrap_or(0),
                            resp.frame
                        ),
                        frame: resp.frame,
                        from_url: true,
                    }),
                );
            }
        }
    }

    fn insert(&mut self, at: SocketAddr, named: Option<Named>) {
        if self.names.insert(at, named).is_none()
            && let Some(old) = self.order.push(at)
        {
            self.names.remove(&old);
        }
    }

    /// What the client was trying to reach at `at`, when a frame before `before` says.
    pub fn of(&self, at: SocketAddr, before: u64) -> Option<&Named> {
        self.names
            .get(&at)
            .and_then(Option::as_ref)
            .filter(|n| n.frame < before)
    }

    /// Addresses forgotten because the table was full.
    pub fn dropped(&self) -> u64 {
        self.order.dropped
    }
}

/// What several rules learn from the same traffic, learned once per rule set: each rule is made
/// with the rule set's `Shared` ([`crate::rules::Entry::new`]) and takes what it reads.
#[derive(Debug, Default)]
pub struct Shared {
    names: Rc<RefCell<Names>>,
    names_taken: Cell<bool>,
}

impl Shared {
    /// The names of server addresses. The first rule to ask learns them from every exchange
    /// (its interest includes every exchange); the others read what it learned.
    pub fn names(&self) -> SharedNames {
        SharedNames {
            names: Rc::clone(&self.names),
            learns: !self.names_taken.replace(true),
        }
    }
}

/// [`Names`] shared by the rules of a set (see [`Shared::names`]).
#[derive(Debug)]
pub struct SharedNames {
    names: Rc<RefCell<Names>>,
    learns: bool,
}

impl Default for SharedNames {
    /// Names of its own, learned by their holder.
    fn default() -> Self {
        Shared::default().names()
    }
}

impl SharedNames {
    /// The exchanges the holder is to be called for: those names are learned from
    /// ([`Names::learn`]), when it is the rule that learns them.
    pub fn interest(&self) -> Interest {
        (Interest::FIRST_ON_CONNECTION
            | Interest::STATUS_201_202
            | Interest::STATUS_3XX
            | Interest::STATUS_401)
            .when(self.learns)
    }

    /// Learns from one exchange, when the holder is the rule that learns.
    pub fn learn(&self, ex: &Exchange) {
        if self.learns {
            self.names.borrow_mut().learn(ex);
        }
    }

    /// [`Names::of`].
    pub fn of(&self, at: SocketAddr, before: u64) -> Option<Named> {
        self.names.borrow().of(at, before).cloned()
    }

    /// [`Names::dropped`], counted by the rule that learns.
    pub fn dropped(&self) -> u64 {
        if self.learns {
            self.names.borrow().dropped()
        } else {
            0
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::flow::Outcome;

    fn attempt(stream: u64, port: u16, frame: u64) -> ConnectionAttempt {
        let mut a = ConnectionAttempt::new(
            stream,
            SocketAddr::from(([10, 0, 0, 1], port)),
            SocketAddr::from(([10, 0, 0, 2], 5000)),
            frame,
            0,
        );
        a.rst_frame = Some(frame + 1);
        a.outcome = Outcome::Refused;
        a
    }

    #[test]
    fn attempts_within_the_collection_time_make_one_group_and_later_ones_are_repeats() {
        let mut g = AttemptGroups::new(Some(60_000_000_000));
        assert!(g.add(&attempt(0, 40000, 1), 0).is_none());
        assert!(g.add(&attempt(1, 40001, 3), 1_000_000_000).is_none());
        assert_eq!(g.next_deadline(), Some(COLLECT_NS));
        assert!(g.take_due(COLLECT_NS - 1).is_empty());
        let due = g.take_due(COLLECT_NS);
        assert_eq!(due.len(), 1);
        assert_eq!(due[0].count, 2);
        let frames: Vec<u64> = due[0].evidence("x").iter().map(|e| e.frame).collect();
        assert_eq!(frames, [1, 2, 3, 4]);
        assert!(g.add(&attempt(2, 40002, 5), 10_000_000_000).is_none());
        assert_eq!(g.repeats(), 1);
        assert!(g.drain().is_empty());
        g.add(&attempt(3, 40003, 7), 70_000_000_000);
        assert_eq!(g.drain().len(), 1);
    }
}
