//! One direction of a TCP connection through `capdiag::flow::reassembly::Reassembler`.
//!
//! Input layout: byte 0 places the base sequence number just below `u32::MAX`
//! (`u32::MAX - byte * 64`) so that streams wrap around; then a list of operations, each
//! starting with an opcode byte `op`:
//!
//! * `op & 7` in `0..=4` — a segment. Flags: SYN `op & 0x08`, FIN `op & 0x10`, RST `op & 0x20`.
//!   Then a little-endian `u16` offset (added to the base, or subtracted when `op & 0x40`), a
//!   payload length byte `L`, when `op & 0x80` a byte `E` (the segment claims `L + 16 * E`
//!   bytes, as when the snap length cut it), and `L` payload bytes.
//! * `op & 7` in `5..=6` — the peer acknowledged `base ± u16` (same offset encoding).
//! * `op & 7 == 7` — flush (the connection ended).
//!
//! Each segment is frame `index + 1`. The harness follows the delivered chunks and checks that:
//! every `Data` chunk holds exactly the bytes its frame carried at the current stream offset
//! (so no byte is delivered twice or out of place, and chunks follow each other with no overlap),
//! no chunk is empty, delivered bytes plus gaps never pass the end of the furthest segment,
//! there is at most one `Fin` (from a FIN segment), the buffer limit holds, and the public
//! counters (`offset`, `buffered`, `finished`, `stats.gap_bytes`) agree with what was delivered.
#![no_main]

use capdiag::flow::reassembly::{Chunk, Reassembler};
use libfuzzer_sys::fuzz_target;

const MAX_BUFFERED: usize = 4096;

struct Seg<'a> {
    data_seq: u32,
    payload: &'a [u8],
    fin: bool,
}

enum Ev {
    Data { frame: u64, bytes: Vec<u8> },
    Gap(u64),
    Fin(u64),
}

fn record(log: &mut Vec<Ev>) -> impl FnMut(Chunk<'_>) + '_ {
    move |c| {
        log.push(match c {
            Chunk::Data { frame, bytes } => Ev::Data {
                frame,
                bytes: bytes.to_vec(),
            },
            Chunk::Gap { len } => Ev::Gap(len),
            Chunk::Fin { frame } => Ev::Fin(frame),
        })
    }
}

struct Input<'a>(&'a [u8]);

impl<'a> Input<'a> {
    fn byte(&mut self) -> Option<u8> {
        let (&b, rest) = self.0.split_first()?;
        self.0 = rest;
        Some(b)
    }
    fn u16(&mut self) -> Option<u16> {
        Some(u16::from_le_bytes([self.byte()?, self.byte()?]))
    }
    fn take(&mut self, n: usize) -> &'a [u8] {
        let n = n.min(self.0.len());
        let (a, b) = self.0.split_at(n);
        self.0 = b;
        a
    }
}

#[derive(Default)]
struct Checker {
    /// Stream offset the next chunk must start at.
    pos: u64,
    gaps: u64,
    fins: u32,
    /// Furthest segment end seen so far (stream offsets, relative to the anchor).
    max_end: i64,
}

impl Checker {
    fn check(&mut self, log: &mut Vec<Ev>, segs: &[Option<Seg<'_>>], anchor: Option<u32>) {
        for ev in log.drain(..) {
            match ev {
                Ev::Data { frame, bytes } => {
                    assert!(!bytes.is_empty(), "empty Data chunk");
                    let anchor = anchor.expect("data delivered before any segment anchored");
                    let seg = segs
                        .get(frame as usize)
                        .and_then(Option::as_ref)
                        .unwrap_or_else(|| panic!("Data names frame {frame}, not a segment"));
                    let rel = i64::from(seg.data_seq.wrapping_sub(anchor) as i32);
                    let k = self.pos as i64 - rel;
                    assert!(
                        k >= 0,
                        "Data at offset {} from frame {frame} which starts at {rel}",
                        self.pos
                    );
                    let k = k as usize;
                    let expect = seg.payload.get(k..k + bytes.len()).unwrap_or_else(|| {
                        panic!(
                            "Data of {} bytes at offset {} lies outside frame {frame} \
                             (starts at {rel}, {} bytes captured)",
                            bytes.len(),
                            self.pos,
                            seg.payload.len()
                        )
                    });
                    assert_eq!(
                        bytes, expect,
                        "Data at offset {} is not what frame {frame} carried there",
                        self.pos
                    );
                    self.pos += bytes.len() as u64;
                }
                Ev::Gap(len) => {
                    assert!(len > 0, "empty Gap chunk");
                    self.pos += len;
                    self.gaps += len;
                }
                Ev::Fin(frame) => {
                    self.fins += 1;
                    assert!(self.fins <= 1, "more than one Fin");
                    let seg = segs
                        .get(frame as usize)
                        .and_then(Option::as_ref)
                        .unwrap_or_else(|| panic!("Fin names frame {frame}, not a segment"));
                    assert!(seg.fin, "Fin from frame {frame}, which had no FIN flag");
                }
            }
            assert!(
                self.pos as i64 <= self.max_end,
                "delivered {} bytes (data + gaps) but no segment ends past {}",
                self.pos,
                self.max_end
            );
        }
    }
}

fuzz_target!(|data: &[u8]| {
    let mut input = Input(data);
    let Some(b0) = input.byte() else {
        return;
    };
    let base = u32::MAX - u32::from(b0) * 64;
    let mut r = Reassembler::new(MAX_BUFFERED);
    let mut log = Vec::new();
    // Index = frame number; frame 0 and non-segment operations are `None`.
    let mut segs: Vec<Option<Seg<'_>>> = vec![None];
    let mut anchor: Option<u32> = None;
    let mut ck = Checker::default();
    let at = |op: u8, off: u16| {
        if op & 0x40 != 0 {
            base.wrapping_sub(u32::from(off))
        } else {
            base.wrapping_add(u32::from(off))
        }
    };
    while let Some(op) = input.byte() {
        let frame = segs.len() as u64;
        match op & 7 {
            0..=4 => {
                let (syn, fin, rst) = (op & 0x08 != 0, op & 0x10 != 0, op & 0x20 != 0);
                let Some(off) = input.u16() else { break };
                let Some(len) = input.byte() else { break };
                let extra = if op & 0x80 != 0 {
                    let Some(e) = input.byte() else { break };
                    u32::from(e) * 16
                } else {
                    0
                };
                let seq = at(op, off);
                let payload = input.take(usize::from(len));
                let claimed_len = payload.len() as u32 + extra;
                let data_seq = if syn { seq.wrapping_add(1) } else { seq };
                if anchor.is_none()
                    && (syn || !(rst || (payload.is_empty() && claimed_len == 0 && !fin)))
                {
                    // The first SYN or data-bearing segment fixes stream offset 0.
                    anchor = Some(data_seq);
                }
                if let Some(a) = anchor {
                    let rel = i64::from(data_seq.wrapping_sub(a) as i32);
                    ck.max_end = ck.max_end.max(rel + i64::from(claimed_len));
                }
                segs.push(Some(Seg {
                    data_seq,
                    payload,
                    fin,
                }));
                r.segment(
                    seq,
                    syn,
                    fin,
                    rst,
                    payload,
                    claimed_len,
                    frame,
                    &mut record(&mut log),
                );
            }
            5 | 6 => {
                let Some(off) = input.u16() else { break };
                segs.push(None);
                r.peer_acked(at(op, off), &mut record(&mut log));
            }
            _ => {
                segs.push(None);
                r.flush(&mut record(&mut log));
                ck.check(&mut log, &segs, anchor);
                assert_eq!(r.buffered(), 0, "bytes still buffered after flush");
            }
        }
        ck.check(&mut log, &segs, anchor);
        assert_eq!(
            r.offset(),
            ck.pos,
            "offset() disagrees with the chunks delivered"
        );
        assert!(
            r.buffered() <= MAX_BUFFERED,
            "{} bytes buffered, limit {MAX_BUFFERED}",
            r.buffered()
        );
        assert_eq!(
            r.finished(),
            ck.fins == 1,
            "finished() disagrees with the Fin chunks"
        );
        assert_eq!(
            r.stats.gap_bytes, ck.gaps,
            "stats.gap_bytes disagrees with the Gap chunks"
        );
    }
    r.flush(&mut record(&mut log));
    ck.check(&mut log, &segs, anchor);
    assert_eq!(r.buffered(), 0, "bytes still buffered after flush");
    assert_eq!(r.offset(), ck.pos);
});
