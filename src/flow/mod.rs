//! TCP flows: the flow table, Wireshark-compatible stream numbering, connection attempts, and
//! per-direction reassembly feeding the application layer through the stream-consumer contract
//! ([`consumer`]). Nothing here names a protocol above TCP.
//!
//! Stream numbers follow Wireshark's `tcp.stream`: 0-based, in order of first appearance of the
//! address/port pair; a SYN whose sequence number differs from the one first seen from that side
//! starts a new stream on the same pair (port reuse). A closed or idle flow keeps a small
//! *dormant* entry so that late packets (the last ACK, a retransmitted FIN, a keep-alive that
//! wakes up) keep their stream number, as they do in Wireshark.

pub mod attempt;
mod conn;
pub mod consumer;
pub mod ending;
mod key;
pub mod reassembly;
pub mod record;
pub mod stall;

use crate::capture::{Frame, TimestampNs};
use crate::decode::{IcmpUnreachable, TcpSegment, flags};
pub use attempt::{ConnectionAttempt, Outcome};
use conn::{Dormant, Flow, Slot, process, starts_new_connection};
pub use consumer::{Consumers, Origin, StreamConsumer};
pub use ending::{EndSide, Ending};
pub use key::FlowKey;
pub use record::{ConnRecord, ConnState};
use record::{IcmpNote, Recorder};
use rustc_hash::FxHashMap;
pub use stall::Stall;

/// Bounds and timeouts of the flow table.
#[derive(Clone, Copy, Debug)]
pub struct Limits {
    /// Most flows with full state at once.
    pub max_flows: usize,
    /// Out-of-order bytes buffered per direction.
    pub max_buffered_per_direction: usize,
    /// Out-of-order bytes buffered over all flows.
    pub max_buffered_total: usize,
    /// A flow silent this long (capture time) is finished and made dormant.
    pub idle_timeout_ns: i64,
    /// A dormant entry is forgotten after this long.
    pub dormant_timeout_ns: i64,
    /// Most dormant entries kept.
    pub max_dormant: usize,
    /// Keep what each connection does and emit its [`ConnRecord`] when it ends (about 200
    /// instructions a packet more; on when something reads them).
    pub records: bool,
    /// Watch whether each direction's data gets through and emit a [`Stall`] when it did not
    /// (about 50 instructions a packet more; on when something reads them).
    pub stalls: bool,
}

impl Default for Limits {
    fn default() -> Limits {
        Limits {
            max_flows: 131_072,
            max_buffered_per_direction: 4 * 1024 * 1024,
            max_buffered_total: 64 * 1024 * 1024,
            idle_timeout_ns: 300 * 1_000_000_000,
            dormant_timeout_ns: 3600 * 1_000_000_000,
            max_dormant: 262_144,
            records: false,
            stalls: false,
        }
    }
}

/// What the flow table reports upward: its own events, and its consumers' (`E`).
#[derive(Debug)]
pub enum FlowEvent<E> {
    /// What a connection's consumer found (an HTTP exchange).
    App(E),
    /// An attempt was answered, refused, found unreachable, or ended unanswered.
    Attempt(ConnectionAttempt),
    /// An attempt's SYN was retransmitted and it is still unanswered.
    AttemptProgress(ConnectionAttempt),
    /// A connection ended (closed, reset, idle, or the capture ended).
    ConnEnd(Box<ConnRecord>),
    /// A connection ended while its consumer was in the middle of a message.
    CutShort(Box<Ending>),
    /// One direction's data stopped getting through (retransmitted, never acknowledged), and
    /// the stall is over: the data was acknowledged at last, or the connection ended.
    Stall(Box<Stall>),
}

/// Counters over all flows.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct FlowStats {
    pub tcp_streams: u64,
    /// Frames that were a second copy of the previous packet (`-i any`).
    pub duplicate_frames: u64,
    pub retransmitted_segments: u64,
    pub out_of_order_segments: u64,
    pub gap_bytes: u64,
    /// Times a direction's out-of-order buffer was full and a hole was declared lost.
    pub reassembly_limit_hits: u64,
    /// Times the out-of-order bytes of all flows together reached their limit (the flow that
    /// crossed it had its holes declared lost).
    pub reassembly_total_limit_hits: u64,
    /// Flows finished early because the flow table was full.
    pub flow_limit_hits: u64,
    /// Flows finished because they were idle.
    pub idle_flows_finished: u64,
    /// Dormant entries forgotten (a later packet of that pair would get a new stream number).
    pub dormant_forgotten: u64,
}

impl FlowStats {
    /// The flow table's limits, as `(what happened, times)`, hit or not.
    pub fn limits_hit(&self) -> Vec<(&'static str, u64)> {
        vec![
            (
                "flow table full (flows finished early)",
                self.flow_limit_hits,
            ),
            (
                "out-of-order buffer full (holes declared lost)",
                self.reassembly_limit_hits,
            ),
            (
                "out-of-order buffers of all flows full (holes declared lost)",
                self.reassembly_total_limit_hits,
            ),
            ("dormant flows forgotten", self.dormant_forgotten),
        ]
    }
}

/// The flow table, handing each connection's bytes to a consumer `A` makes.
pub struct FlowTable<A: Consumers> {
    flows: FxHashMap<FlowKey, Slot<A::Conn>>,
    active: usize,
    /// Out-of-order bytes buffered over all flows.
    buffered_total: usize,
    next_stream: u64,
    limits: Limits,
    pub stats: FlowStats,
    /// The application layer: makes and retires the consumers, keeps their counters.
    pub apps: A,
    /// Records of connections that closed (FINs or a reset), held a while for the packets
    /// that follow a close (the final ACK, a second reset), which Wireshark counts in the
    /// conversation: by stream, with when they closed.
    held: FxHashMap<u64, (Box<ConnRecord>, TimestampNs)>,
    /// Allocations of flows that closed, for the next ones (a flow is large, and most
    /// connections are short).
    spare: Vec<Box<Flow<A::Conn>>>,
}

/// Flow allocations kept for reuse.
const MAX_SPARE_FLOWS: usize = 64;

/// Records held at most; past it, they are handed on at once.
const MAX_HELD: usize = 4096;
/// A closed connection's record is handed on this long (capture time) after its close, at the
/// next sweep, or when its addresses and ports carry a connection again.
const HELD_NS: TimestampNs = 1_000_000_000;

/// What a consumer reports upward, and the work done ahead it takes.
pub(crate) type EventOf<A> = <<A as Consumers>::Conn as StreamConsumer>::Event;
pub(crate) type AheadOf<A> = <<A as Consumers>::Conn as StreamConsumer>::Ahead;

impl<A: Consumers> FlowTable<A> {
    pub fn new(limits: Limits, apps: A) -> FlowTable<A> {
        FlowTable {
            flows: FxHashMap::default(),
            active: 0,
            buffered_total: 0,
            next_stream: 0,
            limits,
            stats: FlowStats::default(),
            apps,
            held: FxHashMap::default(),
            spare: Vec::new(),
        }
    }

    /// A flow in a kept allocation when there is one.
    fn boxed(&mut self, flow: Flow<A::Conn>) -> Box<Flow<A::Conn>> {
        match self.spare.pop() {
            Some(mut b) => {
                *b = flow;
                b
            }
            None => Box::new(flow),
        }
    }

    /// Hands on the held records that closed before `before`, in stream order.
    fn release_held(&mut self, before: TimestampNs, out: &mut Vec<FlowEvent<EventOf<A>>>) {
        if self.held.is_empty() {
            return;
        }
        let mut due: Vec<u64> = self
            .held
            .iter()
            .filter(|(_, (_, ts))| *ts < before)
            .map(|(s, _)| *s)
            .collect();
        due.sort_unstable();
        for s in due {
            if let Some((r, _)) = self.held.remove(&s) {
                out.push(FlowEvent::ConnEnd(r));
            }
        }
    }

    /// Hands on the record held for `stream`, if any.
    fn release_one(&mut self, stream: u64, out: &mut Vec<FlowEvent<EventOf<A>>>) {
        if let Some((r, _)) = self.held.remove(&stream) {
            out.push(FlowEvent::ConnEnd(r));
        }
    }

    /// Counts a packet that came after its connection closed (from the endpoint `from`) in
    /// the record held for `stream`.
    fn count_late(&mut self, stream: u64, from: std::net::SocketAddr, frame: &Frame<'_>) {
        if let Some((r, _)) = self.held.get_mut(&stream) {
            let side = if from == r.orig {
                &mut r.orig_side
            } else {
                &mut r.resp_side
            };
            side.packets += 1;
            r.last_frame = frame.number;
            r.last_ts = frame.ts;
        }
    }

    /// Flows with full state now.
    pub fn active_flows(&self) -> usize {
        self.active
    }

    fn new_stream(&mut self) -> u64 {
        let s = self.next_stream;
        self.next_stream += 1;
        self.stats.tcp_streams += 1;
        s
    }

    /// Processes one TCP segment; returns its stream number (Wireshark's `tcp.stream`).
    /// `ahead` is work done for its payload ahead of time (on the reading thread), which its
    /// flow's consumer is offered in place of doing it again.
    pub fn segment(
        &mut self,
        frame: &Frame<'_>,
        seg: &TcpSegment<'_>,
        mut ahead: Option<AheadOf<A>>,
        out: &mut Vec<FlowEvent<EventOf<A>>>,
    ) -> Option<u64> {
        let (key, dir) = FlowKey::of(seg.src, seg.sport, seg.dst, seg.dport);
        // The common case, one lookup: a segment of an active flow.
        if let Some(stream) = self.continue_active(&key, dir, frame, seg, &mut ahead, out) {
            return Some(stream);
        }
        let ts = frame.ts;
        let carries = seg.payload_len > 0 || seg.has(flags::SYN) || seg.has(flags::FIN);
        let mut retire: Option<Box<Flow<A::Conn>>> = None;
        let mut created = false;
        match self.flows.get_mut(&key) {
            None => created = true,
            Some(Slot::Dormant(d)) => {
                let reused = starts_new_connection(seg, d.base_seq.get(dir).copied().flatten());
                if !reused && !carries {
                    d.last_ts = ts;
                    let stream = d.stream;
                    if !self.held.is_empty() {
                        let from = std::net::SocketAddr::new(seg.src, seg.sport);
                        self.count_late(stream, from, frame);
                    }
                    return Some(stream);
                }
                let stream = d.stream;
                if !self.held.is_empty() {
                    self.release_one(stream, out);
                }
                let Some(Slot::Dormant(d)) = self.flows.get_mut(&key) else {
                    return None;
                };
                if !reused {
                    let (stream, base, counted) = (d.stream, d.base_seq, d.app_counted);
                    let resume = d.resume;
                    // A flow woken from dormancy needs room in the table like a new one.
                    self.room_for_one(ts, frame.number, out);
                    let mut flow = Flow::new(stream, key.endpoints(), ts, &self.limits, base);
                    flow.app_counted = counted;
                    if let Some(r) = resume {
                        flow.rec = Recorder::resume(stream, key.endpoints(), r);
                    }
                    let flow = self.boxed(flow);
                    self.flows.insert(key, Slot::Active(flow));
                    self.active += 1;
                } else {
                    self.flows.remove(&key);
                    created = true;
                }
            }
            Some(Slot::Active(_)) => {
                // `continue_active` declined it: a SYN that reuses the addresses and ports
                // for a new connection.
                if let Some(Slot::Active(old)) = self.flows.remove(&key) {
                    retire = Some(old);
                    self.active -= 1;
                }
                created = true;
            }
        }
        if let Some(mut old) = retire {
            self.buffered_total = self.buffered_total.saturating_sub(old.buffered());
            old.finish(frame.number, ts, &mut self.stats, &mut self.apps, out);
        }
        if created {
            self.room_for_one(ts, frame.number, out);
            let stream = self.new_stream();
            let flow = Flow::new(stream, key.endpoints(), ts, &self.limits, [None, None]);
            let flow = self.boxed(flow);
            self.flows.insert(key, Slot::Active(flow));
            self.active += 1;
        }
        self.continue_active(&key, dir, frame, seg, &mut ahead, out)
    }

    /// Runs the segment through the active flow at `key` and returns its stream; `None` when
    /// there is no active flow there or the segment is a SYN reusing the addresses and ports
    /// for a new connection (Wireshark's rule: a SYN with another sequence number).
    fn continue_active(
        &mut self,
        key: &FlowKey,
        dir: usize,
        frame: &Frame<'_>,
        seg: &TcpSegment<'_>,
        ahead: &mut Option<AheadOf<A>>,
        out: &mut Vec<FlowEvent<EventOf<A>>>,
    ) -> Option<u64> {
        let slot = self.flows.get_mut(key)?;
        let Slot::Active(f) = &*slot else {
            return None;
        };
        if starts_new_connection(seg, f.half.get(dir).and_then(|h| h.base_seq)) {
            return None;
        }
        let mut totals = Totals {
            stats: &mut self.stats,
            active: &mut self.active,
            buffered_total: &mut self.buffered_total,
            apps: &mut self.apps,
            spare: &mut self.spare,
        };
        let (stream, closed) =
            advance(slot, dir, frame, seg, ahead, &mut totals, &self.limits, out);
        if closed
            && let Some(FlowEvent::ConnEnd(r)) = out.last()
            && Some(r.stream) == stream
            && let Some(FlowEvent::ConnEnd(r)) = out.pop()
        {
            // Closed just now: held for the packets that follow a close.
            if self.held.len() >= MAX_HELD {
                self.release_held(TimestampNs::MAX, out);
            }
            self.held.insert(r.stream, (r, frame.ts));
        }
        if self.flows.len() - self.active > self.limits.max_dormant {
            self.limit_dormant();
        }
        stream
    }

    /// A segment too damaged to analyse still gets its pair a stream number, as in Wireshark,
    /// including a new one when it is a SYN that reuses the pair.
    pub fn number_only(
        &mut self,
        frame: &Frame<'_>,
        seg: &TcpSegment<'_>,
        out: &mut Vec<FlowEvent<EventOf<A>>>,
    ) -> u64 {
        let (key, dir) = FlowKey::of(seg.src, seg.sport, seg.dst, seg.dport);
        let existing = match self.flows.get(&key) {
            Some(Slot::Active(f)) => Some((f.stream, f.half.get(dir).and_then(|h| h.base_seq))),
            Some(Slot::Dormant(d)) => Some((d.stream, d.base_seq.get(dir).copied().flatten())),
            None => None,
        };
        match existing {
            Some((stream, base)) if !starts_new_connection(seg, base) => stream,
            _ => {
                if let Some(Slot::Active(mut old)) = self.flows.remove(&key) {
                    self.active -= 1;
                    self.buffered_total = self.buffered_total.saturating_sub(old.buffered());
                    old.finish(frame.number, frame.ts, &mut self.stats, &mut self.apps, out);
                }
                let stream = self.new_stream();
                self.flows.insert(
                    key,
                    Slot::Dormant(Dormant {
                        stream,
                        base_seq: [None, None],
                        last_ts: frame.ts,
                        app_counted: false,
                        resume: None,
                    }),
                );
                self.limit_dormant();
                stream
            }
        }
    }

    /// An ICMP error about a TCP connection: the connection's stream, or `None` when it names
    /// no connection in the table.
    pub fn icmp(
        &mut self,
        frame: &Frame<'_>,
        icmp: &IcmpUnreachable,
        out: &mut Vec<FlowEvent<EventOf<A>>>,
    ) -> Option<u64> {
        let (key, dir) = FlowKey::of(icmp.src, icmp.sport, icmp.dst, icmp.dport);
        let Some(Slot::Active(f)) = self.flows.get_mut(&key) else {
            return None;
        };
        if f.records {
            f.rec.icmp(
                dir,
                IcmpNote {
                    frame: frame.number,
                    about_orig: false,
                    reporter: icmp.reporter,
                    kind: icmp.kind,
                    code: icmp.code,
                    v6: icmp.v6,
                    mtu: icmp.mtu,
                },
            );
        }
        if icmp.says_too_big()
            && let Some(h) = f.half.get_mut(dir)
        {
            h.watch.too_big(frame.number, frame.ts, icmp.mtu);
        }
        if icmp.is_unreachable() && f.attempt_open && f.client_dir == dir {
            if let Some(a) = f.attempt.as_mut() {
                a.icmp_frame = Some(frame.number);
                a.icmp_from = Some((icmp.reporter, frame.ts));
                a.icmp_says = Some(icmp.says());
                a.outcome = Outcome::Unreachable;
            }
            f.close_attempt(out);
        }
        Some(f.stream)
    }

    /// Finishes flows idle longer than the timeout and forgets old dormant entries. Call it
    /// now and then with the capture's current time.
    pub fn sweep(&mut self, now: TimestampNs, frame: u64, out: &mut Vec<FlowEvent<EventOf<A>>>) {
        self.release_held(now.saturating_sub(HELD_NS), out);
        self.finish_idle(now.saturating_sub(self.limits.idle_timeout_ns), frame, out);
        let dormant_before = now.saturating_sub(self.limits.dormant_timeout_ns);
        let before = self.flows.len();
        self.flows
            .retain(|_, s| !matches!(s, Slot::Dormant(d) if d.last_ts < dormant_before));
        self.stats.dormant_forgotten += (before - self.flows.len()) as u64;
        self.limit_dormant();
    }

    /// Keeps the dormant entries under their limit: past it, the oldest half is forgotten.
    fn limit_dormant(&mut self) {
        let dormant = self.flows.len() - self.active;
        if dormant > self.limits.max_dormant {
            // Forget the oldest half of the dormant entries.
            let mut ages: Vec<TimestampNs> = self
                .flows
                .values()
                .filter_map(|s| match s {
                    Slot::Dormant(d) => Some(d.last_ts),
                    Slot::Active(_) => None,
                })
                .collect();
            let mid = ages.len() / 2;
            let (_, cut, _) = ages.select_nth_unstable(mid);
            let cut = *cut;
            let before = self.flows.len();
            self.flows
                .retain(|_, s| !matches!(s, Slot::Dormant(d) if d.last_ts <= cut));
            self.stats.dormant_forgotten += (before - self.flows.len()) as u64;
        }
    }

    fn finish_idle(
        &mut self,
        idle_before: TimestampNs,
        frame: u64,
        out: &mut Vec<FlowEvent<EventOf<A>>>,
    ) -> usize {
        let mut idle: Vec<(u64, FlowKey)> = self
            .flows
            .iter()
            .filter_map(|(k, s)| match s {
                Slot::Active(f) if f.last_ts < idle_before => Some((f.stream, *k)),
                _ => None,
            })
            .collect();
        // Stream order keeps the output the same from run to run.
        idle.sort_unstable_by_key(|(s, _)| *s);
        for (_, key) in &idle {
            if let Some(Slot::Active(f)) = self.flows.get_mut(key) {
                let ts = f.last_ts;
                self.buffered_total = self.buffered_total.saturating_sub(f.buffered());
                f.finish(frame, ts, &mut self.stats, &mut self.apps, out);
                let d = f.dormant();
                self.flows.insert(*key, Slot::Dormant(d));
                self.active -= 1;
            }
        }
        self.stats.idle_flows_finished += idle.len() as u64;
        if self.flows.len() - self.active > self.limits.max_dormant {
            self.limit_dormant();
        }
        idle.len()
    }

    /// Before a flow becomes active: when the table is full, counts it and makes room.
    fn room_for_one(&mut self, now: TimestampNs, frame: u64, out: &mut Vec<FlowEvent<EventOf<A>>>) {
        if self.active >= self.limits.max_flows {
            self.stats.flow_limit_hits += 1;
            self.make_room(now, frame, out);
        }
    }

    /// The table is full: finish the flows idle longest until there is room.
    fn make_room(&mut self, now: TimestampNs, frame: u64, out: &mut Vec<FlowEvent<EventOf<A>>>) {
        let target = self.limits.max_flows - self.limits.max_flows / 8 - 1;
        let mut ages: Vec<TimestampNs> = self
            .flows
            .values()
            .filter_map(|s| match s {
                Slot::Active(f) => Some(f.last_ts),
                Slot::Dormant(_) => None,
            })
            .collect();
        let excess = self.active.saturating_sub(target);
        if excess == 0 || ages.is_empty() {
            return;
        }
        let idx = (excess - 1).min(ages.len() - 1);
        let (_, cut, _) = ages.select_nth_unstable(idx);
        let cut = (*cut).min(now);
        self.finish_idle(cut.saturating_add(1), frame, out);
    }

    /// End of input: finish every flow, in stream order.
    pub fn finish(&mut self, frame: u64, out: &mut Vec<FlowEvent<EventOf<A>>>) {
        self.release_held(TimestampNs::MAX, out);
        let before = self.stats.idle_flows_finished;
        self.finish_idle(i64::MAX, frame, out);
        // Flows still open at the end of the input are not idle ones.
        self.stats.idle_flows_finished = before;
    }
}

/// The table's running totals that a flow's progress changes, and its application layer.
struct Totals<'a, A: Consumers> {
    stats: &'a mut FlowStats,
    active: &'a mut usize,
    buffered_total: &'a mut usize,
    apps: &'a mut A,
    spare: &'a mut Vec<Box<Flow<<A as Consumers>::Conn>>>,
}

/// Runs a segment through the active flow in `slot`, enforcing the total buffer limit, and
/// turns the slot dormant when the flow closed. Returns the stream number, and whether the
/// flow closed.
#[allow(clippy::too_many_arguments)] // the segment, its flow, and where its results go
fn advance<A: Consumers>(
    slot: &mut Slot<A::Conn>,
    dir: usize,
    frame: &Frame<'_>,
    seg: &TcpSegment<'_>,
    ahead: &mut Option<AheadOf<A>>,
    t: &mut Totals<'_, A>,
    limits: &Limits,
    out: &mut Vec<FlowEvent<EventOf<A>>>,
) -> (Option<u64>, bool) {
    let Slot::Active(f) = slot else {
        return (None, false);
    };
    let stream = f.stream;
    let before = f.buffered();
    let closed = process(f, dir, frame, seg, ahead, t.stats, t.apps, out);
    let after = f.buffered();
    *t.buffered_total = (*t.buffered_total + after).saturating_sub(before);
    if *t.buffered_total > limits.max_buffered_total {
        t.stats.reassembly_total_limit_hits += 1;
        f.release(frame.number, frame.ts, out);
        *t.buffered_total = t.buffered_total.saturating_sub(after - f.buffered());
    }
    if closed {
        let d = f.dormant();
        if let Slot::Active(f) = std::mem::replace(slot, Slot::Dormant(d))
            && t.spare.len() < MAX_SPARE_FLOWS
        {
            t.spare.push(f);
        }
        *t.active -= 1;
    }
    (Some(stream), closed)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::{IpAddr, Ipv4Addr, SocketAddr};

    /// A consumer that wants no payload: the table's own behaviour, alone.
    struct Ignore;

    impl StreamConsumer for Ignore {
        type Event = ();
        type Ahead = ();
        fn start_midstream(&mut self, _: usize) {}
        fn data(&mut self, _: usize, _: &[u8], _: Origin) {}
        fn gap(&mut self, _: usize, _: u64, _: Origin) {}
        fn fin(&mut self, _: usize, _: Origin) {}
        fn close(&mut self, _: Origin) {}
        fn cut_short(&self) -> bool {
            false
        }
        fn offer(&mut self, _: usize, _: &[u8], _: ()) {}
        fn withdraw(&mut self) {}
        fn is_done(&self) -> bool {
            true
        }
        fn service(&self) -> Option<&'static str> {
            None
        }
        fn has_events(&self) -> bool {
            false
        }
        fn take_events(&mut self, _: &mut dyn FnMut(())) {}
    }

    impl Consumers for Ignore {
        type Conn = Ignore;
        fn open(&mut self, _: u64, _: [SocketAddr; 2]) -> Ignore {
            Ignore
        }
        fn retire(&mut self, _: Ignore, counted: bool) -> bool {
            counted
        }
    }

    proptest::proptest! {
        /// IPv4 endpoints are put in order as `IpAddr` and the tuple order them (the direction
        /// of every segment depends on it), equal addresses and ports included.
        #[test]
        fn ipv4_endpoints_are_ordered_as_the_tuple_orders_them(
            a in proptest::num::u32::ANY,
            b in proptest::num::u32::ANY,
            pa in proptest::num::u16::ANY,
            pb in proptest::num::u16::ANY,
            same_addr in proptest::bool::ANY,
        ) {
            let a = IpAddr::V4(Ipv4Addr::from_bits(a));
            let b = if same_addr { a } else { IpAddr::V4(Ipv4Addr::from_bits(b)) };
            let (key, dir) = FlowKey::of(a, pa, b, pb);
            let a_first = (a, pa) <= (b, pb);
            proptest::prop_assert_eq!(dir, usize::from(!a_first));
            let (lo, hi) = if a_first { ((a, pa), (b, pb)) } else { ((b, pb), (a, pa)) };
            proptest::prop_assert_eq!((key.lo.addr, key.lo.port), lo);
            proptest::prop_assert_eq!((key.hi.addr, key.hi.port), hi);
        }
    }

    fn seg(port: u16, flags: u8, seq: u32, payload: &[u8]) -> TcpSegment<'_> {
        TcpSegment {
            src: IpAddr::V4(Ipv4Addr::new(192, 0, 2, 1)),
            dst: IpAddr::V4(Ipv4Addr::new(192, 0, 2, 2)),
            sport: port,
            dport: 80,
            seq,
            ack: 1,
            flags,
            window: 1000,
            payload,
            payload_len: payload.len() as u32,
            header: &[],
        }
    }

    fn frame(number: u64) -> Frame<'static> {
        Frame {
            number,
            ts: number as i64 * 1_000_000_000,
            link_type: crate::capture::LinkType::ETHERNET,
            wire_len: 0,
            data: &[],
        }
    }

    /// Connections reset, then woken by late data (segments still in flight after the RST):
    /// each woken flow needs room in the table like a new one.
    #[test]
    fn flows_woken_from_dormancy_respect_the_flow_limit() {
        let mut t = FlowTable::new(
            Limits {
                max_flows: 2,
                ..Limits::default()
            },
            Ignore,
        );
        let mut out = Vec::new();
        let mut n = 0;
        let mut next = || {
            n += 1;
            frame(n)
        };
        for port in 1..=8 {
            t.segment(&next(), &seg(port, flags::SYN, 100, b""), None, &mut out);
            t.segment(&next(), &seg(port, flags::RST, 101, b""), None, &mut out);
        }
        assert_eq!(t.active_flows(), 0);
        for port in 1..=8 {
            t.segment(
                &next(),
                &seg(port, flags::ACK, 101, b"late"),
                None,
                &mut out,
            );
            assert!(t.active_flows() <= 2, "{} active", t.active_flows());
        }
        assert!(t.stats.flow_limit_hits > 0);
    }

    /// A connection's record: how it ended, and an ICMP "fragmentation needed" about its
    /// packets tied to it.
    #[test]
    fn a_connection_record_holds_its_icmp_errors() {
        let limits = Limits {
            records: true,
            ..Limits::default()
        };
        let mut t = FlowTable::new(limits, Ignore);
        let mut out = Vec::new();
        let c = |flags, seq| TcpSegment {
            ack: 5001,
            ..seg(40000, flags, seq, b"")
        };
        t.segment(&frame(1), &c(flags::SYN, 100), None, &mut out);
        let mut synack = seg(40000, flags::SYN | flags::ACK, 5000, b"");
        std::mem::swap(&mut synack.src, &mut synack.dst);
        std::mem::swap(&mut synack.sport, &mut synack.dport);
        t.segment(&frame(2), &synack, None, &mut out);
        t.segment(&frame(3), &c(flags::ACK, 101), None, &mut out);
        let icmp = crate::decode::IcmpUnreachable {
            reporter: IpAddr::V4(Ipv4Addr::new(192, 0, 2, 254)),
            src: IpAddr::V4(Ipv4Addr::new(192, 0, 2, 1)),
            dst: IpAddr::V4(Ipv4Addr::new(192, 0, 2, 2)),
            sport: 40000,
            dport: 80,
            kind: 3,
            code: 4,
            v6: false,
            mtu: Some(1400),
        };
        t.icmp(&frame(4), &icmp, &mut out);
        t.segment(&frame(5), &c(flags::RST, 101), None, &mut out);
        // Held for what follows the close until the end of the input.
        assert!(!out.iter().any(|e| matches!(e, FlowEvent::ConnEnd(_))));
        t.finish(5, &mut out);
        let records: Vec<&ConnRecord> = out
            .iter()
            .filter_map(|e| match e {
                FlowEvent::ConnEnd(r) => Some(&**r),
                _ => None,
            })
            .collect();
        assert_eq!(records.len(), 1);
        let r = records[0];
        assert_eq!(
            (r.conn_state, r.history.as_str()),
            (ConnState::RSTO, "ShAR")
        );
        assert_eq!((r.first_frame, r.last_frame), (1, 5));
        assert_eq!(r.icmp.len(), 1);
        assert_eq!(
            (r.icmp[0].frame, r.icmp[0].about_orig, r.icmp[0].mtu),
            (4, true, Some(1400))
        );
    }

    /// Pairs whose TCP headers are too damaged to analyse still get stream numbers, as dormant
    /// entries: those are bounded too.
    #[test]
    fn pairs_numbered_only_respect_the_dormant_limit() {
        let mut t = FlowTable::new(
            Limits {
                max_dormant: 16,
                ..Limits::default()
            },
            Ignore,
        );
        let mut out = Vec::new();
        for port in 1..=1000u16 {
            t.number_only(
                &frame(u64::from(port)),
                &seg(port, flags::SYN, 7, b""),
                &mut out,
            );
            assert!(t.flows.len() <= 17, "{} entries", t.flows.len());
        }
        assert!(t.stats.dormant_forgotten > 0);
    }
}
