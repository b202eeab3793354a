//! Reading a capture on a second thread.
//!
//! [`CaptureReader::for_each_frame_prefetched`] runs the reader (the file's reads, the record
//! parsing, the numbering) on a thread of its own, which also runs a first step of the work on
//! each frame (`prepare`; for the commands, `engine::Preparer`: decoding, and the HTTP header
//! block a TCP payload begins with parsed) and copies the frames with its result into batches
//! (with a store for parts of the results, [`BatchStore`]); the calling thread receives the
//! batches in order and lends each frame and result to its closure. The frames, their numbers and the way reading ended are exactly those of
//! [`CaptureReader::for_each_frame`]: one reader, one channel, first in first out.
//!
//! Memory is bounded: [`BATCHES`] batches circulate between the two threads, and the reader
//! fills one more (it waits for an empty one when all are full). A batch holds about
//! [`BATCH_BYTES`] of frame data, more by the frame that crosses the mark (room for it is
//! reserved: 768 KiB a batch), and at most [`BATCH_FRAMES`] frame records (about 200 bytes
//! each with what the commands prepare) with the header indexes of the frames that begin with
//! an HTTP header block, kept in the batch's store (16 bytes a header, at most 64 a frame):
//! about 5 MiB in all, 10 MiB at most.
//! Packets are at most 256 KiB for the link types capdiag decodes, but a pcapng packet of a
//! link type Wireshark reads larger packets of (USBPcap, D-Bus) can hold up to 16 MiB; a batch
//! grown for one gives the excess back when it returns, so only a run of such packets, one per
//! batch in flight, holds up to 5 × 16 MiB at once.

use super::file::{CaptureReader, ReadEnd};
use super::{Frame, LinkType, TimestampNs};
use std::sync::mpsc;

/// Batches in circulation between the reading thread and the analysing one.
pub const BATCHES: usize = 4;
/// A batch is handed over once it holds this many bytes of frame data (or more: the frame that
/// crosses the mark stays in it)...
pub const BATCH_BYTES: usize = 512 * 1024;
/// ...or this many frames.
pub const BATCH_FRAMES: usize = 1024;
/// Room for the frame that crosses [`BATCH_BYTES`]: the largest packet of the link types
/// capdiag decodes, so that a batch does not grow for it.
const CROSSING_ROOM: usize = 256 * 1024;

struct Meta<T> {
    number: u64,
    ts: TimestampNs,
    link_type: LinkType,
    wire_len: u32,
    /// End of the frame's data in the batch's bytes (it starts where the previous one ended).
    end: usize,
    /// What `prepare` made of the frame.
    prepared: T,
}

/// Storage that travels with a batch: what `prepare` makes of a frame may keep parts of
/// itself there (by position) instead of allocating them; it is emptied with the batch.
pub trait BatchStore: Default + Send {
    fn clear(&mut self);
}

impl BatchStore for () {
    fn clear(&mut self) {}
}

impl<X: Send> BatchStore for Vec<X> {
    fn clear(&mut self) {
        Vec::clear(self);
    }
}

struct Batch<T, S> {
    data: Vec<u8>,
    frames: Vec<Meta<T>>,
    store: S,
}

impl<T, S: BatchStore> Batch<T, S> {
    fn new() -> Batch<T, S> {
        Batch {
            data: Vec::with_capacity(BATCH_BYTES + CROSSING_ROOM),
            frames: Vec::with_capacity(BATCH_FRAMES),
            store: S::default(),
        }
    }

    fn is_full(&self) -> bool {
        self.data.len() >= BATCH_BYTES || self.frames.len() >= BATCH_FRAMES
    }

    fn push(&mut self, f: &Frame<'_>, prepared: T) {
        self.data.extend_from_slice(f.data);
        self.frames.push(Meta {
            number: f.number,
            ts: f.ts,
            link_type: f.link_type,
            wire_len: f.wire_len,
            end: self.data.len(),
            prepared,
        });
    }

    /// Hands `f` each frame with what was prepared for it, in place: what `f` leaves there is
    /// dropped by [`Batch::clear`].
    /// Stops after a frame for which `f` returns false, and then returns false.
    fn for_each(&mut self, f: &mut impl FnMut(&Frame<'_>, &mut T, &S) -> bool) -> bool {
        let mut start = 0;
        for m in &mut self.frames {
            let frame = Frame {
                number: m.number,
                ts: m.ts,
                link_type: m.link_type,
                wire_len: m.wire_len,
                data: self.data.get(start..m.end).unwrap_or_default(),
            };
            if !f(&frame, &mut m.prepared, &self.store) {
                return false;
            }
            start = m.end;
        }
        true
    }

    /// Empties the batch for reuse, giving back what a frame larger than a batch (a pcapng
    /// USBPcap packet can hold up to 16 MiB) made it grow to.
    fn clear(&mut self) {
        self.data.clear();
        self.data.shrink_to(BATCH_BYTES + CROSSING_ROOM);
        self.frames.clear();
        self.store.clear();
    }
}

impl CaptureReader {
    /// As [`CaptureReader::for_each_frame`], with the reading, and `prepare` of each frame,
    /// done on a second thread while `f` runs on this one with each frame and what `prepare`
    /// made of it (lent, not moved: `f` takes what it keeps, the rest is dropped with the batch).
    /// `prepare` may keep parts of what it makes in its batch's store (`S`), which `f` is lent
    /// with each frame.
    pub fn for_each_frame_prefetched<T: Send, S: BatchStore>(
        &mut self,
        prepare: impl FnMut(&Frame<'_>, &mut S) -> T + Send,
        mut f: impl FnMut(&Frame<'_>, &mut T, &S),
    ) -> ReadEnd {
        self.for_each_frame_prefetched_while(prepare, |fr, t, s| {
            f(fr, t, s);
            true
        })
    }

    /// As [`CaptureReader::for_each_frame_prefetched`], until `f` returns false: no frame
    /// after that one reaches `f`, and reading stops ([`ReadEnd::Stopped`], or how reading
    /// ended if the reader got there first).
    pub fn for_each_frame_prefetched_while<T: Send, S: BatchStore>(
        &mut self,
        mut prepare: impl FnMut(&Frame<'_>, &mut S) -> T + Send,
        mut f: impl FnMut(&Frame<'_>, &mut T, &S) -> bool,
    ) -> ReadEnd {
        let (full_tx, full_rx) = mpsc::sync_channel::<Batch<T, S>>(BATCHES);
        let (empty_tx, empty_rx) = mpsc::channel::<Batch<T, S>>();
        for _ in 0..BATCHES {
            // The receiver is alive here; a failed send only means one batch fewer.
            let _ = empty_tx.send(Batch::new());
        }
        std::thread::scope(|s| {
            let reading = s.spawn(move || {
                let mut batch = Batch::new();
                // Set when the analysing side has gone away (it panicked): reading stops, so
                // that the panic is not held up by the rest of the input (which, on a pipe from
                // a live capture, may never end).
                let mut gone = false;
                let end = self.for_each_frame_while(|fr| {
                    let prepared = prepare(fr, &mut batch.store);
                    batch.push(fr, prepared);
                    if batch.is_full() {
                        let next = empty_rx.recv().unwrap_or_else(|_| Batch::new());
                        let full = std::mem::replace(&mut batch, next);
                        gone = full_tx.send(full).is_err();
                    }
                    !gone
                });
                if !gone && !batch.frames.is_empty() {
                    let _ = full_tx.send(batch);
                }
                end
            });
            // Owned by this closure, so that if `f` panics they are dropped before the scope
            // waits for the reader, which then finds nobody at the other end instead of
            // waiting for a batch forever.
            let (full_rx, empty_tx) = (full_rx, empty_tx);
            for mut batch in full_rx.iter() {
                let go_on = batch.for_each(&mut f);
                batch.clear();
                if !go_on {
                    break;
                }
                // The reader may have finished and dropped its end: nothing to hand back to.
                let _ = empty_tx.send(batch);
            }
            // Told to stop (or done): hang up, so that a reader waiting to hand over a batch,
            // or for an empty one, finds nobody and stops.
            drop(full_rx);
            drop(empty_tx);
            match reading.join() {
                Ok(end) => end,
                Err(panic) => std::panic::resume_unwind(panic),
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pcap(records: &[&[u8]]) -> Vec<u8> {
        let mut v = vec![0xd4, 0xc3, 0xb2, 0xa1, 2, 0, 4, 0];
        v.extend_from_slice(&[0; 8]);
        v.extend_from_slice(&65_535u32.to_le_bytes());
        v.extend_from_slice(&1u32.to_le_bytes());
        for (i, r) in records.iter().enumerate() {
            v.extend_from_slice(&(i as u32).to_le_bytes());
            v.extend_from_slice(&7u32.to_le_bytes());
            v.extend_from_slice(&(r.len() as u32).to_le_bytes());
            v.extend_from_slice(&(r.len() as u32 + 1).to_le_bytes());
            v.extend_from_slice(r);
        }
        v
    }

    type Seen = (u64, TimestampNs, u32, u32, Vec<u8>);

    fn both(file: &[u8]) -> [(Vec<Seen>, ReadEnd); 2] {
        let mut out = Vec::new();
        for prefetched in [false, true] {
            let mut r = CaptureReader::new(std::io::Cursor::new(file.to_vec())).expect("capture");
            let mut seen = Vec::new();
            let mut see = |f: &Frame<'_>, n: u64| {
                assert_eq!(n, f.number, "prepared on the same frame");
                seen.push((f.number, f.ts, f.link_type.0, f.wire_len, f.data.to_vec()))
            };
            let end = if prefetched {
                r.for_each_frame_prefetched(|f, _: &mut ()| f.number, |f, n, _| see(f, *n))
            } else {
                r.for_each_frame(|f| see(f, f.number))
            };
            out.push((seen, end));
        }
        [out.remove(0), out.remove(0)]
    }

    #[test]
    fn batches_hand_over_every_frame_in_order_with_its_data() {
        // Enough frames for several batches of each kind: full by count, full by bytes (large
        // records in a row), and an empty record.
        let small = [0x11u8; 60];
        let big = vec![0x22u8; 200_000];
        let mut records: Vec<&[u8]> = vec![&small; BATCH_FRAMES * 3 + 5];
        for i in 0..7 {
            records.insert(100 + i, &big);
        }
        records.insert(BATCH_FRAMES * 2 + 17, &[]);
        let [plain, prefetched] = both(&pcap(&records));
        assert_eq!(plain.0.len(), records.len());
        assert_eq!(plain.1, ReadEnd::Complete);
        assert_eq!(plain, prefetched);
    }

    #[test]
    fn a_panic_while_analysing_reaches_the_caller_instead_of_hanging() {
        let small = [0x11u8; 60];
        let records: Vec<&[u8]> = vec![&small; BATCH_FRAMES * (BATCHES + 3)];
        let file = pcap(&records);
        let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            let mut r = CaptureReader::new(std::io::Cursor::new(file)).expect("capture");
            r.for_each_frame_prefetched(
                |_, _: &mut ()| (),
                |f, _, _| {
                    if f.number == 10 {
                        panic!("analysis failed");
                    }
                },
            )
        }));
        assert!(r.is_err());
    }

    /// A pcap that never ends, as from `tcpdump -w -` on a live interface.
    struct Endless {
        pending: Vec<u8>,
    }

    impl std::io::Read for Endless {
        fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
            if self.pending.is_empty() {
                self.pending = pcap(&[&[0x33; 60]]).split_off(24);
            }
            let n = buf.len().min(self.pending.len());
            buf[..n].copy_from_slice(&self.pending[..n]);
            self.pending.drain(..n);
            Ok(n)
        }
    }

    #[test]
    fn a_panic_while_analysing_an_endless_input_stops_the_reading() {
        let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            let endless = Endless { pending: pcap(&[]) };
            let mut r = CaptureReader::new(endless).expect("capture");
            r.for_each_frame_prefetched(
                |_, _: &mut ()| (),
                |f, _, _| assert!(f.number < 100_000, "analysis failed"),
            )
        }));
        assert!(r.is_err());
    }

    /// Told to stop (its output has gone, say), the analysing side sees no frame after that
    /// one and the reading stops, even of an input that never ends.
    #[test]
    fn told_to_stop_the_reading_of_an_endless_input_stops() {
        let endless = Endless { pending: pcap(&[]) };
        let mut r = CaptureReader::new(endless).expect("capture");
        let mut last = 0;
        let end = r.for_each_frame_prefetched_while(
            |_, _: &mut ()| (),
            |f, _, _| {
                last = f.number;
                f.number < 5_000
            },
        );
        assert_eq!(last, 5_000);
        assert!(matches!(end, ReadEnd::Stopped { .. }), "{end:?}");
    }

    #[test]
    fn a_panic_on_the_reading_thread_reaches_the_caller() {
        let small = [0x11u8; 60];
        let file = pcap(&vec![&small[..]; 100]);
        let mut seen = 0;
        let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            let mut r = CaptureReader::new(std::io::Cursor::new(file)).expect("capture");
            r.for_each_frame_prefetched(
                |f, _: &mut ()| assert!(f.number < 10, "preparing failed"),
                |_, _, _| seen += 1,
            )
        }));
        assert!(r.is_err());
        // The frames prepared before the panic were never handed over as a partial batch.
        assert_eq!(seen, 0);
    }

    #[test]
    fn reading_stops_where_the_reader_is_told_to() {
        let file = pcap(&[&[1; 40], &[2; 50], &[3; 60]]);
        let mut r = CaptureReader::new(std::io::Cursor::new(file)).expect("capture");
        let mut n = 0;
        let end = r.for_each_frame_while(|_| {
            n += 1;
            n < 2
        });
        // Header 24 bytes, records 16 + 40 and 16 + 50.
        assert_eq!(
            (n, end),
            (
                2,
                ReadEnd::Stopped {
                    offset: 24 + 56 + 66
                }
            )
        );
    }

    #[test]
    fn a_cut_off_file_ends_the_same_way() {
        let file = pcap(&[&[1; 40], &[2; 50]]);
        let cut = &file[..file.len() - 10];
        let [plain, prefetched] = both(cut);
        assert_eq!(plain.0.len(), 1);
        assert!(matches!(plain.1, ReadEnd::CutOff { .. }));
        assert_eq!(plain, prefetched);
    }
}
