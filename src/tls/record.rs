//! TLS records of one direction (RFC 8446 §5.1, RFC 5246 §6.2): a 5-byte header (content type,
//! legacy version, length) and a body, in any split over TCP segments and several per segment.
//! Only the bodies a keyless reader can use are kept (handshake, alert, change cipher spec);
//! application data is counted and passed over without a copy.
//!
//! State: `header` (fewer than 5 bytes of a header seen) → `body` (`remaining` bytes to come)
//! → `header`; a header that is not TLS's makes the direction `broken` for good.

use crate::flow::Origin;

/// Content types (RFC 8446 §5.1).
pub const CHANGE_CIPHER_SPEC: u8 = 20;
pub const ALERT: u8 = 21;
pub const HANDSHAKE: u8 = 22;
pub const APPLICATION_DATA: u8 = 23;
pub const HEARTBEAT: u8 = 24;

/// Largest record body: 2^14 plus the expansion TLS 1.2 allows (RFC 5246 §6.2.3).
pub const MAX_RECORD: usize = (1 << 14) + 2048;

/// One record, as it completed.
#[derive(Debug)]
pub struct Record<'a> {
    /// Its header as sent (the additional data of its protection).
    pub header: [u8; 5],
    pub content_type: u8,
    pub version: u16,
    /// Its body's length.
    pub len: usize,
    /// Its body, when the content type is one that is kept, or every body is (empty
    /// otherwise); decrypted in place when it can be.
    pub body: &'a mut [u8],
    /// The frame that carried its first byte, and the one that completed it (where Wireshark
    /// shows it).
    pub first_frame: u64,
    pub frame: u64,
    pub ts: i64,
}

/// Why a direction stopped being read as TLS records.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Broken {
    /// A header whose content type or version is not TLS's.
    NotARecord,
    /// A header announcing a body longer than TLS allows.
    TooLong,
}

/// The record reader of one direction.
#[derive(Debug, Default)]
pub struct Records {
    header: [u8; 5],
    header_len: usize,
    /// The current record's header, once complete.
    current: Option<(u8, u16, usize)>,
    remaining: usize,
    body: Vec<u8>,
    first_frame: u64,
    pub broken: Option<Broken>,
    /// Bodies of every content type are kept (to be decrypted).
    keep_all: bool,
}

fn kept(content_type: u8) -> bool {
    matches!(content_type, CHANGE_CIPHER_SPEC | ALERT | HANDSHAKE)
}

impl Records {
    /// Reads `bytes` (in order, from frame `o`), calling `on` for each record completed.
    /// With `keep_all`, or once `on` answers true (secrets came for the connection), the
    /// bodies of every content type are kept, to be decrypted.
    pub fn feed(
        &mut self,
        mut bytes: &[u8],
        o: Origin,
        keep_all: bool,
        on: &mut dyn FnMut(Record<'_>) -> bool,
    ) {
        self.keep_all |= keep_all;
        while !bytes.is_empty() && self.broken.is_none() {
            let Some((content_type, version, len)) = self.current else {
                let take = (5 - self.header_len).min(bytes.len());
                let (h, rest) = bytes.split_at(take);
                if let Some(dst) = self.header.get_mut(self.header_len..self.header_len + take) {
                    dst.copy_from_slice(h);
                }
                self.header_len += take;
                bytes = rest;
                if self.header_len < 5 {
                    return;
                }
                self.header_len = 0;
                let [t, major, minor, l0, l1] = self.header;
                let len = usize::from(u16::from_be_bytes([l0, l1]));
                if !(CHANGE_CIPHER_SPEC..=HEARTBEAT).contains(&t) || major != 3 || minor > 4 {
                    self.broken = Some(Broken::NotARecord);
                    return;
                }
                if len > MAX_RECORD {
                    self.broken = Some(Broken::TooLong);
                    return;
                }
                self.current = Some((t, u16::from_be_bytes([major, minor]), len));
                self.remaining = len;
                self.first_frame = o.frame;
                self.body.clear();
                if len == 0 {
                    self.complete(o, on);
                }
                continue;
            };
            let take = self.remaining.min(bytes.len());
            let (b, rest) = bytes.split_at(take);
            if self.keep_all || kept(content_type) {
                self.body.extend_from_slice(b);
            }
            self.remaining -= take;
            bytes = rest;
            if self.remaining == 0 {
                let _ = (version, len);
                self.complete(o, on);
            }
        }
    }

    fn complete(&mut self, o: Origin, on: &mut dyn FnMut(Record<'_>) -> bool) {
        if let Some((content_type, version, len)) = self.current.take() {
            self.keep_all |= on(Record {
                header: self.header,
                content_type,
                version,
                len,
                body: &mut self.body,
                first_frame: self.first_frame,
                frame: o.frame,
                ts: o.ts,
            });
        }
    }

    /// Bytes of a record started and not finished (the capture or the connection ended).
    pub fn pending(&self) -> bool {
        self.header_len > 0 || self.current.is_some()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn o(frame: u64) -> Origin {
        Origin {
            frame,
            arrival: frame,
            ts: 0,
        }
    }

    /// Content type, length, body kept, first frame, frame.
    type Seen = (u8, usize, Vec<u8>, u64, u64);

    fn read(chunks: &[&[u8]]) -> (Vec<Seen>, Option<Broken>) {
        let mut r = Records::default();
        let mut out = Vec::new();
        for (i, c) in chunks.iter().enumerate() {
            r.feed(c, o(i as u64 + 1), false, &mut |rec| {
                out.push((
                    rec.content_type,
                    rec.len,
                    rec.body.to_vec(),
                    rec.first_frame,
                    rec.frame,
                ));
                false
            });
        }
        (out, r.broken)
    }

    #[test]
    fn records_across_segments_and_several_per_segment() {
        // An alert and half a handshake record in one segment, the rest in the next; an
        // application data record split in the header.
        let (recs, broken) = read(&[
            &[21, 3, 3, 0, 2, 2, 40, 22, 3, 3, 0, 4, 1, 0],
            &[0, 0, 23, 3],
            &[3, 0, 3, 9, 9, 9],
        ]);
        assert_eq!(broken, None);
        assert_eq!(
            recs,
            vec![
                (21, 2, vec![2, 40], 1, 1),
                (22, 4, vec![1, 0, 0, 0], 1, 2),
                (23, 3, vec![], 3, 3),
            ]
        );
    }

    #[test]
    fn what_is_not_a_record_stops_the_reader() {
        assert_eq!(
            read(&[b"HTTP/1.1 400 Bad Request\r\n"]).1,
            Some(Broken::NotARecord)
        );
        assert_eq!(read(&[&[23, 3, 3, 0xff, 0xff]]).1, Some(Broken::TooLong));
    }
}
