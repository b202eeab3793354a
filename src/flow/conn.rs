//! One TCP connection in the flow table: both directions' reassembly, its attempt, its
//! consumer, its record; and how one segment moves it on ([`process`]).

use super::consumer::{Consumers, Origin, StreamConsumer};
use super::reassembly::{Chunk, Reassembler};
use super::record::{Recorder, Resume};
use super::stall::{Ended, Watch};
use super::{
    AheadOf, ConnectionAttempt, EndSide, Ending, EventOf, FlowEvent, FlowStats, Limits, Outcome,
};
use crate::capture::{Frame, TimestampNs};
use crate::decode::{TcpSegment, flags};
use rustc_hash::FxHasher;
use std::hash::{Hash, Hasher};
use std::net::SocketAddr;

/// Two copies of the same TCP header this close together are one packet captured twice (on two
/// interfaces with `-i any`), not a retransmission: no TCP stack retransmits that fast.
pub(super) const DUPLICATE_WINDOW_NS: i64 = 5_000_000;

pub(super) struct Half {
    pub(super) reasm: Reassembler,
    /// First sequence number seen from this side (Wireshark's `base_seq`).
    pub(super) base_seq: Option<u32>,
    pub(super) seen: bool,
    /// This side was first seen without a SYN.
    pub(super) midstream: bool,
    pub(super) fin: bool,
    pub(super) last_sig: u64,
    pub(super) last_sig_ts: TimestampNs,
    /// What it did last, for an [`Ending`](super::Ending).
    pub(super) end: EndSide,
    /// Whether its data gets through.
    pub(super) watch: Watch,
}

impl Half {
    pub(super) fn new(max_buffered: usize, base_seq: Option<u32>) -> Half {
        Half {
            reasm: Reassembler::new(max_buffered),
            base_seq,
            seen: false,
            midstream: false,
            fin: false,
            last_sig: 0,
            last_sig_ts: i64::MIN,
            end: EndSide::default(),
            watch: Watch::default(),
        }
    }
}

/// A flow's consumer of reassembled bytes.
pub(super) enum App<C> {
    /// No payload yet.
    Pending,
    Active(C),
    /// The consumer wanted nothing more: payload is ignored.
    Off,
}

pub(super) struct Flow<C> {
    pub(super) stream: u64,
    pub(super) ends: [SocketAddr; 2],
    pub(super) last_ts: TimestampNs,
    pub(super) half: [Half; 2],
    pub(super) attempt: Option<ConnectionAttempt>,
    /// Direction of the client that sent the SYN.
    pub(super) client_dir: usize,
    pub(super) attempt_open: bool,
    pub(super) app: App<C>,
    pub(super) rst: bool,
    /// This stream was already counted as carrying its application's protocol (a revived
    /// dormant flow is the same stream).
    pub(super) app_counted: bool,
    /// What the connection did, for its record (kept when [`Limits::records`] is on).
    pub(super) rec: Recorder,
    pub(super) records: bool,
    /// Whether stalls are watched for ([`Limits::stalls`]).
    pub(super) stalls: bool,
}

pub(super) struct Dormant {
    pub(super) stream: u64,
    pub(super) base_seq: [Option<u32>; 2],
    pub(super) last_ts: TimestampNs,
    pub(super) app_counted: bool,
    /// For the record of the stream, should late packets wake it.
    pub(super) resume: Option<Resume>,
}

pub(super) enum Slot<C> {
    Active(Box<Flow<C>>),
    Dormant(Dormant),
}

pub(super) fn signature(seg: &TcpSegment<'_>) -> u64 {
    let mut h = FxHasher::default();
    seg.header.hash(&mut h);
    seg.payload_len.hash(&mut h);
    h.finish()
}

impl<C: StreamConsumer> Flow<C> {
    pub(super) fn new(
        stream: u64,
        ends: [SocketAddr; 2],
        ts: TimestampNs,
        limits: &Limits,
        base: [Option<u32>; 2],
    ) -> Flow<C> {
        Flow {
            stream,
            ends,
            last_ts: ts,
            half: [
                Half::new(limits.max_buffered_per_direction, base[0]),
                Half::new(limits.max_buffered_per_direction, base[1]),
            ],
            attempt: None,
            client_dir: 0,
            attempt_open: false,
            app: App::Pending,
            rst: false,
            app_counted: false,
            rec: Recorder::new(stream, ends),
            records: limits.records,
            stalls: limits.stalls,
        }
    }

    pub(super) fn drain(&mut self, out: &mut Vec<FlowEvent<C::Event>>) {
        // Most segments complete no exchange; an empty drain still costs its bookkeeping.
        if let App::Active(h) = &mut self.app
            && h.has_events()
        {
            h.take_events(&mut |e| out.push(FlowEvent::App(e)));
        }
    }

    pub(super) fn close_attempt(&mut self, out: &mut Vec<FlowEvent<C::Event>>) {
        if self.attempt_open {
            self.attempt_open = false;
            if let Some(a) = &self.attempt {
                out.push(FlowEvent::Attempt(a.clone()));
            }
        }
    }

    /// Ends the flow: buffered data is delivered (holes declared lost), messages in progress
    /// are reported cut short, waiting exchanges are emitted.
    pub(super) fn finish<A: Consumers<Conn = C>>(
        &mut self,
        frame: u64,
        ts: TimestampNs,
        stats: &mut FlowStats,
        apps: &mut A,
        out: &mut Vec<FlowEvent<C::Event>>,
    ) {
        if let App::Active(h) = &mut self.app {
            for dir in 0..2 {
                let Some(half) = self.half.get_mut(dir) else {
                    continue;
                };
                half.reasm.flush(&mut |c| feed(h, dir, c, frame, ts));
            }
            h.close(Origin {
                frame,
                arrival: frame,
                ts,
            });
        }
        self.drain(out);
        // A stall first: it may be why a message was cut short.
        for dir in 0..2 {
            if let Some(t) = self.half.get_mut(dir).and_then(|h| h.watch.at_end()) {
                out.push(FlowEvent::Stall(Box::new(self.stall(dir, t))));
            }
        }
        if let App::Active(h) = &self.app
            && h.cut_short()
        {
            out.push(FlowEvent::CutShort(Box::new(Ending {
                stream: self.stream,
                ends: self.ends,
                sides: [self.half[0].end, self.half[1].end],
            })));
        }
        self.retire_app(apps);
        self.close_attempt(out);
        for half in &self.half {
            let r = half.reasm.stats;
            stats.retransmitted_segments += r.retransmitted_segments;
            stats.out_of_order_segments += r.out_of_order_segments;
            stats.gap_bytes += r.gap_bytes;
            stats.reassembly_limit_hits += r.buffer_limit_hits;
        }
        if self.records {
            let missed = [
                self.half[0].reasm.stats.gap_bytes,
                self.half[1].reasm.stats.gap_bytes,
            ];
            out.push(FlowEvent::ConnEnd(Box::new(self.rec.take_record(missed))));
        }
    }

    /// The report of a stall of direction `dir`'s data.
    pub(super) fn stall(&self, dir: usize, t: Ended) -> super::Stall {
        let [a, b] = &self.half;
        let [x, y] = self.ends;
        let ((sender, from), (receiver, to)) = if dir == 0 {
            ((a, x), (b, y))
        } else {
            ((b, y), (a, x))
        };
        let last = if receiver.watch.last().frame > sender.watch.last().frame {
            receiver.watch.last()
        } else {
            sender.watch.last()
        };
        let mut s = sender
            .watch
            .stall(t, self.stream, from, to, receiver.watch.mss(), last);
        s.sender_closed = sender.end.closed();
        s.receiver_closed = receiver.end.closed();
        s
    }

    /// Out-of-order bytes this flow holds.
    pub(super) fn buffered(&self) -> usize {
        self.half.iter().map(|h| h.reasm.buffered()).sum()
    }

    /// Declares this flow's holes lost, delivering what it had buffered.
    pub(super) fn release(
        &mut self,
        frame: u64,
        ts: TimestampNs,
        out: &mut Vec<FlowEvent<C::Event>>,
    ) {
        if let App::Active(h) = &mut self.app {
            for (dir, half) in self.half.iter_mut().enumerate() {
                half.reasm.release(&mut |c| feed(h, dir, c, frame, ts));
            }
        }
        self.drain(out);
    }

    /// Gives this flow's consumer back to the application layer, which folds its counters
    /// into its own; the flow's payload is ignored from then on.
    pub(super) fn retire_app<A: Consumers<Conn = C>>(&mut self, apps: &mut A) {
        if let App::Active(h) = std::mem::replace(&mut self.app, App::Off) {
            if self.records {
                self.rec.set_service(h.service());
            }
            self.app_counted = apps.retire(h, self.app_counted);
        }
    }

    pub(super) fn dormant(&self) -> Dormant {
        Dormant {
            stream: self.stream,
            base_seq: [self.half[0].base_seq, self.half[1].base_seq],
            last_ts: self.last_ts,
            app_counted: self.app_counted,
            resume: self.records.then(|| self.rec.to_resume()),
        }
    }
}

/// Hands one reassembled chunk of direction `dir` to the flow's consumer.
pub(super) fn feed<C: StreamConsumer>(
    h: &mut C,
    dir: usize,
    c: Chunk<'_>,
    arrival: u64,
    ts: TimestampNs,
) {
    match c {
        Chunk::Data { frame, bytes } => h.data(dir, bytes, Origin { frame, arrival, ts }),
        Chunk::Gap { len } => h.gap(
            dir,
            len,
            Origin {
                frame: arrival,
                arrival,
                ts,
            },
        ),
        Chunk::Fin { frame } => h.fin(dir, Origin { frame, arrival, ts }),
    }
}

/// Whether `seg` reuses a pair's addresses and ports for a new connection, its direction having
/// begun at sequence number `base` (Wireshark's rule: a SYN without ACK with another sequence
/// number).
pub(super) fn starts_new_connection(seg: &TcpSegment<'_>, base: Option<u32>) -> bool {
    seg.has(flags::SYN) && !seg.has(flags::ACK) && base.is_some_and(|b| b != seg.seq)
}

/// Runs one segment through a flow; true when the flow closed.
#[allow(clippy::too_many_arguments)] // the segment, its flow, and where its results go
pub(super) fn process<A: Consumers>(
    f: &mut Flow<A::Conn>,
    dir: usize,
    frame: &Frame<'_>,
    seg: &TcpSegment<'_>,
    ahead: &mut Option<AheadOf<A>>,
    stats: &mut FlowStats,
    apps: &mut A,
    out: &mut Vec<FlowEvent<EventOf<A>>>,
) -> bool {
    let ts = frame.ts;
    let n = frame.number;
    let other = 1 - dir;
    let syn = seg.has(flags::SYN);
    let ack = seg.has(flags::ACK);
    let rst = seg.has(flags::RST);
    let fin = seg.has(flags::FIN);
    f.last_ts = ts;
    {
        let Some(half) = f.half.get_mut(dir) else {
            return false;
        };
        let sig = signature(seg);
        if half.last_sig == sig
            && ts.saturating_sub(half.last_sig_ts) <= DUPLICATE_WINDOW_NS
            && ts >= half.last_sig_ts
        {
            stats.duplicate_frames += 1;
            if f.records {
                f.rec.duplicate(dir, n, ts);
            }
            return false;
        }
        half.last_sig = sig;
        half.last_sig_ts = ts;
        if f.records {
            f.rec.segment(dir, seg, n, ts);
        }
        if half.base_seq.is_none() && !rst {
            // Wireshark's base_seq: the SYN's sequence number, or one less than the first
            // sequence number seen when the SYN was not captured.
            half.base_seq = Some(if syn {
                seg.seq
            } else {
                seg.seq.wrapping_sub(1)
            });
        }
        if !half.seen && (syn || seg.payload_len > 0) {
            half.seen = true;
            half.midstream = !syn;
            if half.midstream
                && let App::Active(h) = &mut f.app
            {
                h.start_midstream(dir);
            }
        }
        if fin {
            half.fin = true;
        }
        let end = &mut half.end;
        if seg.payload_len > 0 {
            end.last_data_ts = Some(ts);
        }
        if fin && end.fin.is_none() {
            end.fin = Some((n, ts));
        }
        if rst && end.rst.is_none() {
            end.rst = Some((n, ts));
        }
        if !syn && !rst {
            if seg.window != 0 {
                end.zero_window_since = None;
            } else if end.zero_window_since.is_none() {
                end.zero_window_since = Some(ts);
            }
        }
    }
    // Whether each side's data gets through.
    if f.stalls {
        let [h0, h1] = &mut f.half;
        let (this, that) = if dir == 0 { (h0, h1) } else { (h1, h0) };
        this.watch.sent(seg, n, ts, &that.watch);
        if let Some(t) = that.watch.peer_sent(seg, n, ts) {
            out.push(FlowEvent::Stall(Box::new(f.stall(other, t))));
        }
    }
    // Connection attempts.
    if syn && !ack {
        match f.attempt.as_mut() {
            None => {
                let [a, b] = f.ends;
                let (client, server) = if dir == 0 { (a, b) } else { (b, a) };
                f.attempt = Some(ConnectionAttempt::new(f.stream, client, server, n, ts));
                f.client_dir = dir;
                f.attempt_open = true;
            }
            Some(a) if f.client_dir == dir && f.attempt_open => {
                a.syn(n, ts);
                out.push(FlowEvent::AttemptProgress(a.clone()));
            }
            Some(_) => {}
        }
    } else if syn && ack && f.attempt_open && f.client_dir == other {
        if let Some(a) = f.attempt.as_mut() {
            a.syn_ack_frame = Some(n);
            a.outcome = Outcome::Answered;
        }
        f.close_attempt(out);
    } else if rst && f.attempt_open && f.client_dir == other {
        if let Some(a) = f.attempt.as_mut() {
            a.rst_frame = Some(n);
            a.rst_ts = ts;
            a.outcome = Outcome::Refused;
        }
        f.close_attempt(out);
    } else if f.attempt_open && !syn && !rst && (ack || f.client_dir == other) {
        // The client acknowledging, or the server sending, after the SYN: the SYN-ACK was
        // answered but not captured (one direction missing, or a capture drop).
        if let Some(a) = f.attempt.as_mut() {
            a.outcome = Outcome::Answered;
        }
        f.close_attempt(out);
    }
    // Payload.
    if matches!(f.app, App::Pending) && seg.payload_len > 0 {
        let mut h = apps.open(f.stream, f.ends);
        for (d, half) in f.half.iter().enumerate() {
            if half.seen && half.midstream {
                h.start_midstream(d);
            }
        }
        f.app = App::Active(h);
    }
    let mut dead = false;
    let Flow { half, app, .. } = f;
    if let App::Active(h) = app {
        let offered = ahead.is_some();
        if let Some(ahead) = ahead.take() {
            h.offer(dir, seg.payload, ahead);
        }
        let [h0, h1] = half;
        let (this, that) = if dir == 0 { (h0, h1) } else { (h1, h0) };
        this.reasm.segment(
            seg.seq,
            syn,
            fin,
            rst,
            seg.payload,
            seg.payload_len,
            n,
            &mut |c| feed(h, dir, c, n, ts),
        );
        if ack && !rst {
            that.reasm
                .peer_acked(seg.ack, &mut |c| feed(h, other, c, n, ts));
        }
        if offered {
            h.withdraw();
        }
        if h.is_done() {
            dead = true;
        }
    } else if matches!(app, App::Pending) {
        let [h0, h1] = half;
        let this = if dir == 0 { h0 } else { h1 };
        this.reasm.segment(
            seg.seq,
            syn,
            fin,
            rst,
            seg.payload,
            seg.payload_len,
            n,
            &mut |_| {},
        );
    }
    f.drain(out);
    if dead {
        f.retire_app(apps);
    }
    let both_fin = f.half.iter().all(|h| h.fin);
    let delivered = match &f.app {
        App::Active(_) => f.half.iter().all(|h| h.reasm.finished()),
        _ => true,
    };
    if rst || (both_fin && delivered) {
        f.rst = rst;
        f.finish(n, ts, stats, apps, out);
        return true;
    }
    false
}
