//! One direction of a TCP connection, put back in order.
//!
//! Bytes are addressed by a 64-bit *stream offset* rather than by the 32-bit sequence number, so
//! wrap-around (RFC 9293 §3.4) is handled once, in `Reassembler::offset_of`, and the rest of
//! the code compares plain integers.
//!
//! In-order data is passed on borrowed, straight from the packet; only segments that arrive ahead
//! of a hole are copied (bounded by `max_buffered`, which counts their bytes and
//! [`SEGMENT_COST`] for each). Bytes already delivered are never delivered
//! again (retransmissions and overlaps are trimmed: the first copy seen wins). Bytes that never
//! appear in the capture become a [`Chunk::Gap`] so the parser above can resynchronise, once the
//! capture proves they are lost: the peer acknowledged past them, the buffer limit was reached,
//! or the connection ended.

use std::collections::BTreeMap;

/// What the reassembler hands to the stream's consumer, in stream order.
#[derive(Debug, PartialEq, Eq)]
pub enum Chunk<'a> {
    /// Bytes, with the frame that carried them.
    Data { frame: u64, bytes: &'a [u8] },
    /// `len` bytes that are not in the capture.
    Gap { len: u64 },
    /// The sender's FIN: no more data in this direction.
    Fin { frame: u64 },
}

/// What each out-of-order segment counts against the buffer limits besides its bytes: the
/// bookkeeping it costs. Without it, segments whose bytes the snap length cut off (a capture
/// of headers only) would pile up behind a hole counting nothing.
pub const SEGMENT_COST: usize = 64;

fn cost(bytes: usize) -> usize {
    bytes + SEGMENT_COST
}

#[derive(Debug)]
struct Pending {
    data: Vec<u8>,
    /// Bytes of this segment beyond `data` that the snap length cut off.
    missing_tail: u64,
    frame: u64,
}

impl Pending {
    fn len(&self) -> u64 {
        self.data.len() as u64 + self.missing_tail
    }
}

/// Counters a reassembler keeps about what it saw.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct ReassemblyStats {
    /// Segments whose bytes had all been delivered already.
    pub retransmitted_segments: u64,
    /// Segments that arrived ahead of a hole and were buffered.
    pub out_of_order_segments: u64,
    /// Bytes never captured (sum of gaps).
    pub gap_bytes: u64,
    /// Times the buffer limit forced a hole to be declared lost.
    pub buffer_limit_hits: u64,
}

#[derive(Debug)]
pub struct Reassembler {
    /// Sequence number of the next expected byte; `None` until this direction is first seen.
    next_seq: Option<u32>,
    /// Stream offset of the next expected byte.
    next_off: u64,
    pending: BTreeMap<u64, Pending>,
    pending_bytes: usize,
    max_buffered: usize,
    /// Stream offset just past the last byte, once a FIN was seen.
    fin_off: Option<u64>,
    fin_frame: u64,
    finished: bool,
    /// The direction was first seen with its SYN (so offset 0 is the true start of the stream).
    pub saw_syn: bool,
    pub stats: ReassemblyStats,
}

impl Reassembler {
    pub fn new(max_buffered: usize) -> Reassembler {
        Reassembler {
            next_seq: None,
            next_off: 0,
            pending: BTreeMap::new(),
            pending_bytes: 0,
            max_buffered,
            fin_off: None,
            fin_frame: 0,
            finished: false,
            saw_syn: false,
            stats: ReassemblyStats::default(),
        }
    }

    /// Whether the FIN has been delivered.
    pub fn finished(&self) -> bool {
        self.finished
    }

    /// What is buffered ahead of a hole: its bytes, and [`SEGMENT_COST`] per segment.
    pub fn buffered(&self) -> usize {
        self.pending_bytes
    }

    /// Bytes delivered or declared lost so far.
    pub fn offset(&self) -> u64 {
        self.next_off
    }

    /// The stream offset of a sequence number, relative to the delivery point; `None` when it
    /// lies before the start of the stream.
    fn offset_of(&self, seq: u32) -> Option<u64> {
        let next = self.next_seq?;
        // Differences are taken modulo 2^32 and read as signed (RFC 1982 serial arithmetic).
        let diff = i64::from(seq.wrapping_sub(next) as i32);
        let off = self.next_off as i64 + diff;
        u64::try_from(off).ok()
    }

    /// Takes one segment of this direction.
    ///
    /// `payload` is what was captured; `claimed_len` what the IP header says the payload is
    /// (larger when the snap length cut the frame).
    #[allow(clippy::too_many_arguments)]
    pub fn segment<'p>(
        &mut self,
        seq: u32,
        syn: bool,
        fin: bool,
        rst: bool,
        payload: &'p [u8],
        claimed_len: u32,
        frame: u64,
        out: &mut dyn FnMut(Chunk<'_>),
    ) {
        let data_seq = if syn { seq.wrapping_add(1) } else { seq };
        if self.next_seq.is_none() {
            if !syn && (rst || (payload.is_empty() && claimed_len == 0 && !fin)) {
                // Without the SYN, anchor on the first segment that carries data: an RST's
                // sequence number need not be in the stream, and a bare ACK adds nothing.
                return;
            }
            self.next_seq = Some(data_seq);
            self.saw_syn = syn;
        }
        let Some(off) = self.offset_of(data_seq) else {
            self.stats.retransmitted_segments += 1;
            return;
        };
        let claimed = u64::from(claimed_len).max(payload.len() as u64);
        let end = off + claimed;
        if fin && self.fin_off.is_none() {
            self.fin_off = Some(end);
            self.fin_frame = frame;
        }
        if claimed > 0 {
            if end <= self.next_off {
                self.stats.retransmitted_segments += 1;
            } else if off <= self.next_off {
                self.deliver(off, payload, claimed, frame, out);
                self.drain(out);
            } else {
                self.buffer(off, payload, claimed, frame, out);
            }
        }
        self.check_fin(out);
    }

    /// The other direction acknowledged up to `ack`: bytes before it were sent, so a hole
    /// below it that is followed by buffered data (or the FIN) will never be filled from the
    /// capture.
    pub fn peer_acked(&mut self, ack: u32, out: &mut dyn FnMut(Chunk<'_>)) {
        let Some(ack_off) = self.offset_of(ack) else {
            return;
        };
        let hole_end = match (self.pending.keys().next(), self.fin_off) {
            (Some(&first), _) => first,
            (None, Some(fin)) if fin > self.next_off => fin,
            _ => return,
        };
        if ack_off >= hole_end {
            self.skip_to(hole_end, out);
            self.drain(out);
            self.check_fin(out);
        }
    }

    /// The connection is over (both FINs, RST, end of capture, eviction): deliver everything
    /// buffered, declaring the holes lost, and the FIN if one was seen.
    pub fn flush(&mut self, out: &mut dyn FnMut(Chunk<'_>)) {
        while let Some(&first) = self.pending.keys().next() {
            self.skip_to(first, out);
            self.drain(out);
        }
        if let Some(fin) = self.fin_off {
            self.skip_to(fin, out);
        }
        self.check_fin(out);
    }

    /// Memory is short: declare every hole before buffered data lost and deliver the data.
    pub fn release(&mut self, out: &mut dyn FnMut(Chunk<'_>)) {
        while let Some(&first) = self.pending.keys().next() {
            self.skip_to(first, out);
            self.drain(out);
        }
        self.check_fin(out);
    }

    fn skip_to(&mut self, off: u64, out: &mut dyn FnMut(Chunk<'_>)) {
        if off > self.next_off {
            let len = off - self.next_off;
            self.stats.gap_bytes += len;
            out(Chunk::Gap { len });
            self.advance(len);
        }
    }

    fn advance(&mut self, len: u64) {
        self.next_off += len;
        if let Some(s) = self.next_seq.as_mut() {
            *s = s.wrapping_add(len as u32);
        }
    }

    /// Delivers a segment that starts at or before the delivery point.
    fn deliver(
        &mut self,
        off: u64,
        payload: &[u8],
        claimed: u64,
        frame: u64,
        out: &mut dyn FnMut(Chunk<'_>),
    ) {
        let skip = self.next_off - off;
        let end = off + claimed;
        if let Some(bytes) = usize::try_from(skip).ok().and_then(|s| payload.get(s..))
            && !bytes.is_empty()
        {
            out(Chunk::Data { frame, bytes });
            self.advance(bytes.len() as u64);
        }
        // Whatever the snap length cut off.
        self.skip_to(end, out);
    }

    /// Delivers buffered segments that the delivery point has reached.
    fn drain(&mut self, out: &mut dyn FnMut(Chunk<'_>)) {
        while let Some(entry) = self.pending.first_entry() {
            let off = *entry.key();
            if off > self.next_off {
                break;
            }
            let p = entry.remove();
            self.pending_bytes -= cost(p.data.len());
            if off + p.len() > self.next_off {
                self.deliver(off, &p.data, p.len(), p.frame, out);
            } else {
                self.stats.retransmitted_segments += 1;
            }
        }
    }

    fn buffer(
        &mut self,
        off: u64,
        payload: &[u8],
        claimed: u64,
        frame: u64,
        out: &mut dyn FnMut(Chunk<'_>),
    ) {
        if let Some(existing) = self.pending.get(&off)
            && existing.len() >= claimed
        {
            self.stats.retransmitted_segments += 1;
            return;
        }
        if self.pending_bytes + cost(payload.len()) > self.max_buffered {
            // The hole is not going to be filled in time: declare it lost and move on.
            self.stats.buffer_limit_hits += 1;
            let first = self.pending.keys().next().copied().unwrap_or(off).min(off);
            self.skip_to(first, out);
            self.drain(out);
            if off <= self.next_off {
                if off + claimed > self.next_off {
                    self.deliver(off, payload, claimed, frame, out);
                    self.drain(out);
                }
                return;
            }
            if self.pending_bytes + cost(payload.len()) > self.max_buffered {
                // Still no room (the segment alone is larger than the limit): skip to it.
                self.skip_to(off, out);
                self.deliver(off, payload, claimed, frame, out);
                self.drain(out);
                return;
            }
        }
        self.stats.out_of_order_segments += 1;
        self.pending_bytes += cost(payload.len());
        if let Some(old) = self.pending.insert(
            off,
            Pending {
                data: payload.to_vec(),
                missing_tail: claimed - payload.len() as u64,
                frame,
            },
        ) {
            self.pending_bytes -= cost(old.data.len());
        }
    }

    fn check_fin(&mut self, out: &mut dyn FnMut(Chunk<'_>)) {
        if !self.finished
            && let Some(fin) = self.fin_off
            && self.next_off >= fin
            && self.pending.is_empty()
        {
            self.finished = true;
            out(Chunk::Fin {
                frame: self.fin_frame,
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A compact record of what was delivered: `"d1:abc"` data from frame 1, `"g3"` a 3-byte gap,
    /// `"f7"` FIN in frame 7.
    fn run(r: &mut Reassembler, steps: &[(u32, &str, &[u8], u64)]) -> Vec<String> {
        let mut log = Vec::new();
        for &(seq, fl, data, frame) in steps {
            r.segment(
                seq,
                fl.contains('S'),
                fl.contains('F'),
                fl.contains('R'),
                data,
                data.len() as u32,
                frame,
                &mut |c| log.push(fmt(c)),
            );
        }
        log
    }

    fn fmt(c: Chunk<'_>) -> String {
        match c {
            Chunk::Data { frame, bytes } => format!("d{frame}:{}", String::from_utf8_lossy(bytes)),
            Chunk::Gap { len } => format!("g{len}"),
            Chunk::Fin { frame } => format!("f{frame}"),
        }
    }

    #[test]
    fn in_order_with_syn_and_fin() {
        let mut r = Reassembler::new(1 << 20);
        let log = run(
            &mut r,
            &[
                (100, "S", b"", 1),
                (101, "", b"hello ", 2),
                (107, "", b"world", 3),
                (112, "F", b"", 4),
            ],
        );
        assert_eq!(log, ["d2:hello ", "d3:world", "f4"]);
        assert!(r.saw_syn && r.finished());
    }

    #[test]
    fn out_of_order_is_buffered_then_released_with_its_own_frame() {
        let mut r = Reassembler::new(1 << 20);
        let log = run(
            &mut r,
            &[
                (0, "S", b"", 1),
                (4, "", b"cd", 2),
                (6, "", b"ef", 3),
                (1, "", b"ab", 4),
                (3, "", b"X", 5),
            ],
        );
        assert_eq!(log, ["d4:ab", "d5:X", "d2:cd", "d3:ef"]);
        assert_eq!(r.stats.out_of_order_segments, 2);
        assert_eq!(r.buffered(), 0);
    }

    #[test]
    fn retransmission_and_overlap_are_trimmed_first_copy_wins() {
        let mut r = Reassembler::new(1 << 20);
        let log = run(
            &mut r,
            &[
                (10, "", b"abcd", 1),
                (10, "", b"abcd", 2),
                (12, "", b"XXef", 3),
                (8, "", b"zz", 4),
            ],
        );
        assert_eq!(log, ["d1:abcd", "d3:ef"]);
        assert_eq!(r.stats.retransmitted_segments, 2);
    }

    #[test]
    fn overlapping_buffered_segments() {
        let mut r = Reassembler::new(1 << 20);
        let log = run(
            &mut r,
            &[
                (0, "", b"a", 1),
                (3, "", b"def", 2),
                (4, "", b"EFG", 3),
                (1, "", b"bc", 4),
            ],
        );
        assert_eq!(log, ["d1:a", "d4:bc", "d2:def", "d3:G"]);
    }

    #[test]
    fn sequence_wrap_around() {
        let mut r = Reassembler::new(1 << 20);
        let start = u32::MAX - 2;
        let log = run(
            &mut r,
            &[
                (start, "S", b"", 1),
                (start.wrapping_add(4), "", b"de", 3),
                (start.wrapping_add(1), "", b"abc", 2),
                (start.wrapping_add(6), "F", b"", 4),
            ],
        );
        assert_eq!(log, ["d2:abc", "d3:de", "f4"]);
        assert_eq!(r.offset(), 5);
    }

    #[test]
    fn hole_declared_lost_when_peer_acks_past_it() {
        let mut r = Reassembler::new(1 << 20);
        let mut log = run(&mut r, &[(0, "", b"ab", 1), (5, "", b"fg", 3)]);
        r.peer_acked(4, &mut |c| log.push(fmt(c)));
        assert_eq!(
            log,
            ["d1:ab"],
            "an ack below the buffered data proves nothing"
        );
        r.peer_acked(7, &mut |c| log.push(fmt(c)));
        assert_eq!(log, ["d1:ab", "g3", "d3:fg"]);
        assert_eq!(r.stats.gap_bytes, 3);
    }

    #[test]
    fn missing_data_before_fin_is_a_gap_at_flush() {
        let mut r = Reassembler::new(1 << 20);
        let mut log = run(
            &mut r,
            &[(0, "S", b"", 1), (1, "", b"ab", 2), (9, "F", b"", 5)],
        );
        assert_eq!(log, ["d2:ab"]);
        r.flush(&mut |c| log.push(fmt(c)));
        assert_eq!(log, ["d2:ab", "g6", "f5"]);
    }

    #[test]
    fn buffer_limit_forces_a_gap() {
        // Room for two segments of two bytes.
        let mut r = Reassembler::new(2 * cost(2));
        let log = run(
            &mut r,
            &[
                (0, "", b"a", 1),
                (3, "", b"de", 2),
                (5, "", b"fg", 3),
                (7, "", b"hi", 4),
            ],
        );
        assert_eq!(log, ["d1:a", "g2", "d2:de", "d3:fg", "d4:hi"]);
        assert_eq!(r.stats.buffer_limit_hits, 1);
    }

    /// A capture of headers only: segments behind a hole carry no bytes, yet each counts, so
    /// they cannot pile up without limit.
    #[test]
    fn segments_without_captured_bytes_count_against_the_limit() {
        let mut r = Reassembler::new(10 * SEGMENT_COST);
        let mut log = Vec::new();
        r.segment(0, false, false, false, b"", 100, 1, &mut |c| {
            log.push(fmt(c))
        });
        for i in 0..1000u32 {
            r.segment(
                200 + 100 * i,
                false,
                false,
                false,
                b"",
                100,
                2 + u64::from(i),
                &mut |c| log.push(fmt(c)),
            );
            assert!(
                r.pending.len() <= 10,
                "{} segments buffered",
                r.pending.len()
            );
        }
        assert!(r.stats.buffer_limit_hits > 0);
        assert!(r.buffered() <= 10 * SEGMENT_COST);
    }

    #[test]
    fn release_declares_holes_lost() {
        let mut r = Reassembler::new(1 << 20);
        let mut log = run(
            &mut r,
            &[(0, "", b"a", 1), (3, "", b"d", 2), (6, "", b"g", 3)],
        );
        assert_eq!(r.buffered(), 2 + 2 * SEGMENT_COST);
        r.release(&mut |c| log.push(fmt(c)));
        assert_eq!(log, ["d1:a", "g2", "d2:d", "g2", "d3:g"]);
        assert_eq!(r.buffered(), 0);
    }

    #[test]
    fn snaplen_cut_segment_leaves_a_gap_for_the_missing_tail() {
        let mut r = Reassembler::new(1 << 20);
        let mut log = Vec::new();
        r.segment(0, false, false, false, b"abc", 10, 1, &mut |c| {
            log.push(fmt(c))
        });
        r.segment(10, false, false, false, b"k", 1, 2, &mut |c| {
            log.push(fmt(c))
        });
        assert_eq!(log, ["d1:abc", "g7", "d2:k"]);
    }

    #[test]
    fn rst_does_not_anchor_the_stream_and_data_before_start_is_dropped() {
        let mut r = Reassembler::new(1 << 20);
        let log = run(
            &mut r,
            &[(500, "R", b"", 1), (10, "", b"ab", 2), (5, "", b"zz", 3)],
        );
        assert_eq!(log, ["d2:ab"]);
    }

    #[test]
    fn data_in_syn_is_delivered() {
        let mut r = Reassembler::new(1 << 20);
        let log = run(&mut r, &[(41, "S", b"GET", 1), (45, "", b" /", 2)]);
        assert_eq!(log, ["d1:GET", "d2: /"]);
    }
}
