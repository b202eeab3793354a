//! Stalls: one direction's data that does not get through while the connection lives on. A
//! sender's segment sent again and again without being acknowledged; or, seen from the
//! receiver's side, bytes the sender sent (its later sequence numbers say so) that never
//! arrived and that the receiver never acknowledged. Each direction keeps a few numbers per
//! packet ([`Watch`]: its next sequence number, the first segments of its turn, the largest
//! segment sent); the receiver's acknowledgements are read, and the evidence kept, only once a
//! stall begins, and it is reported ([`Stall`]) when it is over: when the receiver finally
//! acknowledges the data, gives up (its FIN or RST), or the connection ends.
//!
//! These are facts about TCP only; what they mean (a path MTU black hole, say) is for a rule
//! to decide.

use crate::capture::TimestampNs;
use crate::decode::{TcpSegment, flags};
use std::net::SocketAddr;

/// Frames kept of each kind of evidence (retransmissions, the receiver's packets); the rest
/// are counted.
pub const MAX_STALL_FRAMES: usize = 8;

/// The first segments of each turn kept, to name a stalled one's first transmission.
const TURN_KEPT: usize = 4;

/// Retransmissions of a segment before its stall is reported (one is common on any path).
const REPORT_AFTER: u64 = 2;

/// One captured segment.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct Sent {
    pub frame: u64,
    pub ts: TimestampNs,
    /// Its payload, in bytes.
    pub len: u32,
}

/// Frames of one kind, the first [`MAX_STALL_FRAMES`] kept and all counted.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct Frames {
    pub kept: Vec<Sent>,
    pub count: u64,
}

impl Frames {
    fn push(&mut self, s: Sent) {
        self.count += 1;
        if self.kept.len() < MAX_STALL_FRAMES {
            self.kept.push(s);
        }
    }
}

/// Where the capture saw the stall from.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub enum Seen {
    /// On the sender's side of the loss: the segment at the head of the line and its
    /// retransmissions.
    AtSender {
        /// Its first transmission (`None` when it was not among the first segments of the
        /// sender's turn, so which frame first carried it is not known).
        first: Option<Sent>,
        /// Retransmissions at least as long as the first one (or as the first retransmission).
        retransmissions: Frames,
        /// The first retransmission shorter than that (a sender probing a smaller size).
        smaller: Option<Sent>,
        /// The receiver's packet that acknowledged (part of) it at last.
        acked: Option<Sent>,
    },
    /// On the receiver's side: the sender's bytes `[hole_start, hole_start + hole_bytes)` (in
    /// its sequence space, relative) never arrived, and the receiver never acknowledged them.
    AtReceiver {
        /// The sender's last packet before the missing bytes.
        before: Sent,
        /// Its first packet beyond them (the one that shows they were sent).
        after: Sent,
        hole_bytes: u32,
    },
}

/// A stall of one direction of a connection.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct Stall {
    /// Wireshark's `tcp.stream`.
    pub stream: u64,
    pub sender: SocketAddr,
    pub receiver: SocketAddr,
    pub seen: Seen,
    /// The MSS option of each side's SYN, and its frame.
    pub sender_mss: Option<(u64, u16)>,
    pub receiver_mss: Option<(u64, u16)>,
    /// The largest segment of the sender's known to have got through: sent before the stalled
    /// one in its turn or in the turns before (at the sender's side; the largest ever sent when
    /// the stalled one was deep in a transfer), or captured (at the receiver's).
    pub largest_through: Option<Sent>,
    /// The receiver's packets that acknowledged nothing new while the data was missing
    /// (duplicate ACKs, its own data, its FIN): it was there, and still waiting.
    pub receiver_waiting: Frames,
    /// The receiver's last packet before the data was first sent.
    pub receiver_before: Option<Sent>,
    /// The first ICMP "fragmentation needed" or ICMPv6 "packet too big" about the sender's
    /// packets, and the MTU it announced.
    pub icmp: Option<(Sent, Option<u32>)>,
    /// The connection's last packet when the stall was reported.
    pub last: Sent,
    /// Each side's first FIN or RST by then: frame, time, whether it was a reset.
    pub sender_closed: Option<(u64, TimestampNs, bool)>,
    pub receiver_closed: Option<(u64, TimestampNs, bool)>,
}

/// Whether sequence number `a` is after `b` (modulo 2^32).
fn after(a: u32, b: u32) -> bool {
    (a.wrapping_sub(b) as i32) > 0
}

/// A stall in progress, kept from its first sign.
#[derive(Clone, Debug)]
pub(super) struct Track {
    /// Sequence number of the missing data's first byte.
    seq: u32,
    seen: Seen,
    /// The length a retransmission must reach to count as full.
    full: u32,
    receiver_waiting: Frames,
    receiver_before: Option<Sent>,
    largest_through: Option<Sent>,
}

/// One direction's running state, as the sender of its data. Kept on every packet, so kept
/// small (a `Sent` whose frame is 0 is none), and the receiver's acknowledgements are read only
/// while a stall is in progress: the segment a stall starts from is known as the first one sent
/// after the receiver's data (its request, its ClientHello), when the sender took its turn.
#[derive(Clone, Debug, Default)]
pub(super) struct Watch {
    /// The sequence number after the highest byte sent (once `sending`).
    next: u32,
    sending: bool,
    /// The receiver sent data since this side's last new data: the next is a new turn.
    turn: bool,
    /// The first segments of this side's current turn (at most [`TURN_KEPT`]) and their
    /// sequence numbers: a segment a black hole swallows is among them.
    turn_seqs: [u32; TURN_KEPT],
    turn_sent: [Sent; TURN_KEPT],
    turn_kept: u8,
    /// The receiver's data packet that began the turn.
    head_peer: Sent,
    /// The receiver's last data packet.
    peer_data: Sent,
    /// The largest segment sent, and the largest sent before the current turn (which got
    /// through: the receiver answered after it).
    largest: Sent,
    through: Sent,
    /// This side's last packet: frame and time.
    last_frame: u64,
    last_ts: TimestampNs,
    /// The MSS of this side's SYN (0: none), and its frame.
    mss: u16,
    mss_frame: u64,
    icmp: Option<Box<(Sent, Option<u32>)>>,
    track: Option<Box<Track>>,
    /// A stall was reported when the receiver gave up: the sender's further tries are no news.
    given_up: bool,
}

fn some(s: Sent) -> Option<Sent> {
    (s.frame != 0).then_some(s)
}

impl Watch {
    /// A packet this side sent; `peer` is the receiver's watch.
    #[inline(always)]
    pub(super) fn sent(&mut self, seg: &TcpSegment<'_>, frame: u64, ts: TimestampNs, peer: &Watch) {
        let before = (self.last_frame, self.last_ts);
        self.last_frame = frame;
        self.last_ts = ts;
        let len = seg.payload_len;
        let seq = seg.seq;
        // The common cases first: an ACK, or the next data, in order, nothing in progress.
        if seg.flags & (flags::SYN | flags::RST | flags::FIN) == 0
            && self.sending
            && seq == self.next
        {
            if len == 0 {
                return;
            }
            if self.track.is_none() {
                self.turn_data(seq, Sent { frame, ts, len });
                if len > self.largest.len {
                    self.largest = Sent { frame, ts, len };
                }
                self.next = seq.wrapping_add(len);
                return;
            }
        }
        self.other(seg, Sent { frame, ts, len }, before, peer);
    }

    /// A new turn begins: all sent before it got through (the receiver spoke after it).
    #[cold]
    fn new_turn(&mut self) {
        self.turn = false;
        self.turn_kept = 0;
        self.through = self.largest;
        self.head_peer = self.peer_data;
    }

    /// New data: one of the first segments of the turn, perhaps the first of a new one.
    #[inline(always)]
    fn turn_data(&mut self, seq: u32, s: Sent) {
        if self.turn {
            self.new_turn();
        }
        let i = usize::from(self.turn_kept);
        if let (Some(q), Some(k)) = (self.turn_seqs.get_mut(i), self.turn_sent.get_mut(i)) {
            *q = seq;
            *k = s;
            self.turn_kept += 1;
        }
    }

    /// Every other packet: a SYN, RST or FIN, data out of order or again, a stall in
    /// progress.
    #[inline(never)]
    fn other(
        &mut self,
        seg: &TcpSegment<'_>,
        this: Sent,
        before: (u64, TimestampNs),
        peer: &Watch,
    ) {
        let (len, seq) = (this.len, seg.seq);
        if seg.flags & (flags::SYN | flags::RST) != 0 {
            if seg.has(flags::SYN) {
                self.syn(seg, this.frame);
            }
            return;
        }
        if !self.sending {
            self.next = seq;
            self.sending = true;
        }
        // A FIN takes a sequence number too.
        let end = seq
            .wrapping_add(len)
            .wrapping_add(u32::from(seg.has(flags::FIN)));
        if after(end, self.next) {
            if after(seq, self.next) {
                let before = Sent {
                    frame: before.0,
                    ts: before.1,
                    len: 0,
                };
                self.gap(seq, this, before, &peer.last());
            } else if len > 0 {
                // New data (perhaps with some already sent).
                self.turn_data(seq, this);
                if self.track.is_some() {
                    self.arrived(seq);
                }
            }
            if len > self.largest.len {
                self.largest = this;
            }
            self.next = end;
        } else if len > 0 {
            self.retransmitted(seq, end, this, &peer.last());
        }
    }

    /// This side's SYN: its MSS, and where its sequence numbers begin.
    #[cold]
    fn syn(&mut self, seg: &TcpSegment<'_>, frame: u64) {
        if let Some(m) = seg.mss() {
            self.mss = m;
            self.mss_frame = frame;
        }
        if !self.sending {
            self.next = seg.seq.wrapping_add(1);
            self.sending = true;
        }
    }

    /// New data from `seq` on: the end of a stall at the receiver when it fills the gap.
    #[cold]
    fn arrived(&mut self, seq: u32) {
        if let Some(t) = &self.track
            && matches!(t.seen, Seen::AtReceiver { .. })
            && !after(seq, t.seq)
        {
            self.track = None; // the missing bytes arrived after all
        }
    }

    /// Bytes from `next` to `seq` were sent and never captured; `after` is the packet that
    /// shows it.
    #[cold]
    fn gap(&mut self, seq: u32, after_gap: Sent, before: Sent, peer: &Sent) {
        if self.track.is_some() {
            return;
        }
        let mut receiver_waiting = Frames::default();
        // The receiver spoke after the last packet before them, without them.
        if peer.frame > before.frame {
            receiver_waiting.push(*peer);
        }
        self.track = Some(Box::new(Track {
            seq: self.next,
            seen: Seen::AtReceiver {
                before,
                after: after_gap,
                hole_bytes: seq.wrapping_sub(self.next),
            },
            full: 0,
            receiver_waiting,
            receiver_before: None,
            largest_through: None,
        }));
    }

    /// A segment of data `[seq, end)` already sent.
    #[cold]
    fn retransmitted(&mut self, seq: u32, end: u32, s: Sent, peer: &Sent) {
        match self.track.as_deref_mut() {
            Some(Track {
                seen: Seen::AtReceiver { .. },
                seq: t,
                ..
            }) => {
                if !after(seq, *t) && after(end, *t) {
                    self.track = None; // the missing bytes arrived after all
                }
                return;
            }
            Some(Track {
                seen:
                    Seen::AtSender {
                        retransmissions,
                        smaller,
                        ..
                    },
                seq: t,
                full,
                ..
            }) => {
                if seq == *t {
                    if s.len >= *full {
                        retransmissions.push(s);
                    } else if smaller.is_none() {
                        *smaller = Some(s);
                    }
                }
                return;
            }
            None => {}
        }
        if self.given_up {
            return;
        }
        // Its first transmission, if one of the first of the turn; what got through before it:
        // the largest segment of the turns before, and the segments of this turn before it
        // (the receiver acknowledged up to it).
        let kept = usize::from(self.turn_kept).min(TURN_KEPT);
        let at = self.turn_seqs.iter().take(kept).position(|&q| q == seq);
        let first = at.and_then(|i| self.turn_sent.get(i).copied());
        let through = at.map(|i| {
            self.turn_sent
                .iter()
                .take(i)
                .fold(self.through, |m, s| if s.len > m.len { *s } else { m })
        });
        let mut retransmissions = Frames::default();
        retransmissions.push(s);
        self.track = Some(Box::new(Track {
            seq,
            full: first.map_or(s.len, |f| f.len.min(s.len.max(1))),
            seen: Seen::AtSender {
                first,
                retransmissions,
                smaller: None,
                acked: None,
            },
            receiver_waiting: Frames::default(),
            receiver_before: if first.is_some() {
                some(self.head_peer)
            } else {
                some(*peer)
            },
            largest_through: match through {
                Some(t) => some(t),
                // Not one of the first of its turn: larger ones of the turn may have got
                // through before it.
                None => some(self.largest),
            },
        }));
    }

    /// A packet the other side (the receiver of this side's data) sent: a stall it ends, if
    /// one to report (its acknowledgement reached the missing data, or it gave up: a FIN or
    /// RST while the data waited).
    #[inline(always)]
    pub(super) fn peer_sent(
        &mut self,
        seg: &TcpSegment<'_>,
        frame: u64,
        ts: TimestampNs,
    ) -> Option<Box<Track>> {
        if seg.payload_len > 0 {
            self.turn = true;
            self.peer_data = Sent {
                frame,
                ts,
                len: seg.payload_len,
            };
        }
        self.track.as_ref()?;
        self.in_stall(seg, frame, ts)
    }

    /// The receiver's packet while this side's data is missing: an acknowledgement past it
    /// ends the stall; one up to it, or its own data, says it is there and waiting; its FIN or
    /// RST says it gave up, which ends the stall too (the sender, its data unacknowledged,
    /// never closes: a live capture would otherwise wait for the idle timeout).
    #[cold]
    fn in_stall(
        &mut self,
        seg: &TcpSegment<'_>,
        frame: u64,
        ts: TimestampNs,
    ) -> Option<Box<Track>> {
        let s = Sent {
            frame,
            ts,
            len: seg.payload_len,
        };
        let t = self.track.as_mut()?;
        if seg.has(flags::ACK) && !seg.has(flags::RST) {
            if after(seg.ack, t.seq) {
                return self.acknowledged(s);
            }
            if seg.ack == t.seq {
                t.receiver_waiting.push(s);
            }
        }
        if !seg.has(flags::FIN) && !seg.has(flags::RST) {
            return None;
        }
        if t.receiver_waiting.kept.last().map(|w| w.frame) != Some(frame) {
            t.receiver_waiting.push(s);
        }
        match &t.seen {
            // Not yet retransmitted enough to tell: the sender's next tries may.
            Seen::AtSender {
                retransmissions, ..
            } if retransmissions.count < REPORT_AFTER => None,
            _ => {
                self.given_up = true;
                self.track.take()
            }
        }
    }

    /// The receiver acknowledged (some of) the missing data in `s`: the stall is over.
    #[cold]
    fn acknowledged(&mut self, s: Sent) -> Option<Box<Track>> {
        let mut t = self.track.take()?;
        match &mut t.seen {
            Seen::AtSender {
                acked,
                retransmissions,
                ..
            } if retransmissions.count >= REPORT_AFTER => {
                *acked = Some(s);
                Some(t)
            }
            _ => None,
        }
    }

    /// An ICMP error saying the path cannot carry this side's packets at their size.
    pub(super) fn too_big(&mut self, frame: u64, ts: TimestampNs, mtu: Option<u32>) {
        if self.icmp.is_none() {
            self.icmp = Some(Box::new((Sent { frame, ts, len: 0 }, mtu)));
        }
    }

    /// The stall in progress when the connection ends, if it is one to report.
    pub(super) fn at_end(&mut self) -> Option<Box<Track>> {
        let t = self.track.take()?;
        match &t.seen {
            Seen::AtSender {
                retransmissions, ..
            } if retransmissions.count < REPORT_AFTER => None,
            _ => Some(t),
        }
    }

    /// The report of a stall `t` of this side, sent from `sender` to `receiver`, whose
    /// connection's last packet was `last`.
    pub(super) fn stall(
        &self,
        t: Box<Track>,
        stream: u64,
        sender: SocketAddr,
        receiver: SocketAddr,
        receiver_mss: Option<(u64, u16)>,
        last: Sent,
    ) -> Stall {
        let t = *t;
        let largest_through = match &t.seen {
            Seen::AtSender { .. } => t.largest_through,
            // Everything captured got through.
            Seen::AtReceiver { .. } => some(self.largest),
        };
        Stall {
            stream,
            sender,
            receiver,
            seen: t.seen,
            sender_mss: self.mss(),
            receiver_mss,
            largest_through,
            receiver_waiting: t.receiver_waiting,
            receiver_before: t.receiver_before,
            icmp: self.icmp.as_deref().copied(),
            last,
            sender_closed: None,
            receiver_closed: None,
        }
    }

    pub(super) fn mss(&self) -> Option<(u64, u16)> {
        (self.mss != 0).then_some((self.mss_frame, self.mss))
    }

    pub(super) fn last(&self) -> Sent {
        Sent {
            frame: self.last_frame,
            ts: self.last_ts,
            len: 0,
        }
    }
}

/// A stall that ended, as [`Watch::peer_sent`] hands it over.
pub(super) type Ended = Box<Track>;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::decode::flags::{ACK, FIN, SYN};
    use std::net::{IpAddr, Ipv4Addr};

    /// A segment with `len` bytes of payload (not captured: only its length counts here).
    fn seg(fl: u8, seq: u32, ack: u32, len: u32) -> TcpSegment<'static> {
        TcpSegment {
            src: IpAddr::V4(Ipv4Addr::new(192, 0, 2, 1)),
            dst: IpAddr::V4(Ipv4Addr::new(192, 0, 2, 2)),
            sport: 8080,
            dport: 40000,
            seq,
            ack,
            flags: fl,
            window: 1000,
            payload: &[],
            payload_len: len,
            header: &[],
        }
    }

    /// A sender whose connection began at sequence number `isn` (`u32::MAX - 10` tests the
    /// wrap), its SYN-ACK acknowledged (frame 1, 2).
    fn started(isn: u32) -> Watch {
        let mut w = Watch::default();
        w.sent(&seg(SYN | ACK, isn, 1, 0), 1, 1, &Watch::default());
        assert!(
            w.peer_sent(&seg(ACK, 1, isn.wrapping_add(1), 0), 2, 2)
                .is_none()
        );
        w
    }

    /// A receiver's watch whose last packet was `p`.
    fn at(p: Sent) -> Watch {
        Watch {
            last_frame: p.frame,
            last_ts: p.ts,
            ..Watch::default()
        }
    }

    /// The receiver's packet `s` in frame `f`, as its watch would pass it on.
    fn peer(w: &mut Watch, last: &mut Sent, s: TcpSegment<'static>, f: u64) -> Option<Box<Track>> {
        *last = Sent {
            frame: f,
            ts: f as i64,
            len: s.payload_len,
        };
        w.peer_sent(&s, f, f as i64)
    }

    #[test]
    fn a_head_segment_retransmitted_and_never_acknowledged_is_a_stall() {
        for isn in [1000, u32::MAX - 10] {
            let d = isn.wrapping_add(1);
            let mut w = started(isn);
            let mut p = Sent::default();
            let mut ended = None;
            ended = ended.or(peer(&mut w, &mut p, seg(ACK, 1, d, 100), 3)); // the request
            w.sent(&seg(ACK, d, 101, 1448), 4, 4, &at(p));
            w.sent(&seg(ACK, d.wrapping_add(1448), 101, 500), 5, 5, &at(p));
            ended = ended.or(peer(&mut w, &mut p, seg(ACK, 101, d, 0), 6)); // dup ACK
            for f in 7..10 {
                w.sent(&seg(ACK, d, 101, 1448), f, f as i64, &at(p));
            }
            // Not the head: not counted.
            w.sent(&seg(ACK, d.wrapping_add(1448), 101, 500), 10, 10, &at(p));
            assert!(ended.is_none());
            // Over when the receiver gives up; the sender's next try is no news.
            ended = ended.or(peer(&mut w, &mut p, seg(ACK | FIN, 101, d, 0), 11));
            let t = ended.expect("a stall, when the receiver gives up");
            for f in 12..15 {
                w.sent(&seg(ACK, d, 102, 1448), f, f as i64, &at(p));
            }
            assert!(w.at_end().is_none());
            let Seen::AtSender {
                first,
                retransmissions,
                smaller,
                acked,
            } = &t.seen
            else {
                panic!("at the sender: {:?}", t.seen)
            };
            assert_eq!(first.map(|f| f.frame), Some(4));
            assert_eq!(
                retransmissions
                    .kept
                    .iter()
                    .map(|r| r.frame)
                    .collect::<Vec<_>>(),
                vec![7, 8, 9]
            );
            assert_eq!((*smaller, *acked), (None, None));
            // The receiver's FIN after the retransmissions (a duplicate ACK before the first is
            // not read: acknowledgements are read only while a stall is in progress).
            assert_eq!(
                t.receiver_waiting
                    .kept
                    .iter()
                    .map(|w| w.frame)
                    .collect::<Vec<_>>(),
                vec![11]
            );
            assert_eq!(t.receiver_before.map(|b| b.frame), Some(3));
        }
    }

    #[test]
    fn a_stall_acknowledged_after_a_smaller_retransmission_is_reported_then() {
        let mut w = started(1000);
        let mut p = Sent::default();
        let mut ended = None;
        w.sent(&seg(ACK, 1001, 1, 1448), 3, 3, &at(p));
        w.sent(&seg(ACK, 1001, 1, 1448), 4, 4, &at(p));
        w.sent(&seg(ACK, 1001, 1, 1448), 5, 5, &at(p));
        w.sent(&seg(ACK, 1001, 1, 1024), 6, 6, &at(p));
        ended = ended.or(peer(&mut w, &mut p, seg(ACK, 1, 1001 + 1024, 0), 7));
        let t = ended.expect("reported when acknowledged");
        let Seen::AtSender { smaller, acked, .. } = t.seen else {
            panic!("at the sender")
        };
        assert_eq!(smaller.map(|s| (s.frame, s.len)), Some((6, 1024)));
        assert_eq!(acked.map(|a| a.frame), Some(7));
        assert!(w.at_end().is_none());
    }

    #[test]
    fn the_stalled_segment_is_named_from_the_first_of_its_turn() {
        // A small header segment gets through, the first full-size one after it does not.
        let mut w = started(1000);
        let mut p = Sent::default();
        assert!(peer(&mut w, &mut p, seg(ACK, 1, 1001, 80), 3).is_none()); // the request
        w.sent(&seg(ACK, 1001, 81, 200), 4, 4, &at(p));
        w.sent(&seg(ACK, 1201, 81, 1448), 5, 5, &at(p));
        w.sent(&seg(ACK, 2649, 81, 1448), 6, 6, &at(p));
        assert!(peer(&mut w, &mut p, seg(ACK, 81, 1201, 0), 7).is_none());
        for f in 8..11 {
            w.sent(&seg(ACK, 1201, 81, 1448), f, f as i64, &at(p));
        }
        let t = w.at_end().expect("a stall");
        let Seen::AtSender { first, .. } = t.seen else {
            panic!("at the sender")
        };
        assert_eq!(first.map(|f| f.frame), Some(5));
        assert_eq!(t.largest_through.map(|s| s.len), Some(200));
        assert_eq!(t.receiver_before.map(|s| s.frame), Some(3));

        // Deep in a transfer, which larger segments got through is not known: the largest sent
        // stands for them.
        let mut w = started(1000);
        let mut p = Sent::default();
        assert!(peer(&mut w, &mut p, seg(ACK, 1, 1001, 80), 3).is_none());
        let mut seq = 1001u32;
        for f in 4..14 {
            w.sent(&seg(ACK, seq, 81, 1448), f, f as i64, &at(p));
            seq = seq.wrapping_add(1448);
        }
        let lost = 1001 + 8 * 1448;
        for f in 14..17 {
            w.sent(&seg(ACK, lost, 81, 1448), f, f as i64, &at(p));
        }
        let t = w.at_end().expect("a stall");
        let Seen::AtSender { first, .. } = t.seen else {
            panic!("at the sender")
        };
        assert_eq!(first, None);
        assert_eq!(t.largest_through.map(|s| s.len), Some(1448));
    }

    #[test]
    fn one_retransmission_or_a_fin_makes_no_stall() {
        let mut w = started(1000);
        let mut p = Sent::default();
        let mut ended = None;
        w.sent(&seg(ACK, 1001, 1, 1448), 3, 3, &at(p));
        w.sent(&seg(ACK, 1001, 1, 1448), 4, 4, &at(p));
        ended = ended.or(peer(&mut w, &mut p, seg(ACK, 1, 1001 + 1448, 0), 5));
        // A FIN takes a sequence number: the ACK after it is no gap.
        w.sent(&seg(ACK | FIN, 1001 + 1448, 1, 0), 6, 6, &at(p));
        w.sent(&seg(ACK, 1001 + 1449, 2, 0), 7, 7, &at(p));
        assert!(ended.is_none());
        assert!(w.at_end().is_none());
    }

    #[test]
    fn bytes_never_captured_and_never_acknowledged_are_a_stall_at_the_receiver() {
        let mut w = started(1000);
        let mut p = Sent::default();
        assert!(peer(&mut w, &mut p, seg(ACK, 1, 1001, 80), 3).is_none());
        w.sent(&seg(ACK, 1001, 81, 0), 4, 4, &at(p));
        // 2896 bytes missing, then the tail.
        w.sent(&seg(ACK, 1001 + 2896, 81, 544), 5, 5, &at(p));
        assert!(peer(&mut w, &mut p, seg(ACK, 81, 1001, 0), 6).is_none());
        let t = w.at_end().expect("a stall");
        let Seen::AtReceiver {
            before,
            after,
            hole_bytes,
        } = t.seen
        else {
            panic!("at the receiver")
        };
        assert_eq!((before.frame, after.frame, hole_bytes), (4, 5, 2896));
        assert_eq!(t.receiver_waiting.count, 1);

        // The same bytes arriving late end it.
        let mut w = started(1000);
        let p = Sent::default();
        w.sent(&seg(ACK, 1001 + 2896, 1, 544), 3, 3, &at(p));
        w.sent(&seg(ACK, 1001, 1, 1448), 4, 4, &at(p));
        assert!(w.at_end().is_none());
        // So does an acknowledgement past them (the capture missed them, the receiver did not).
        let mut w = started(1000);
        let mut p = Sent::default();
        w.sent(&seg(ACK, 1001 + 2896, 1, 544), 3, 3, &at(p));
        assert!(peer(&mut w, &mut p, seg(ACK, 1, 1001 + 3440, 0), 4).is_none());
        assert!(w.at_end().is_none());
    }
}
