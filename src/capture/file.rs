//! Reading `.pcap` and `.pcapng` files (or standard input) frame by frame.
//!
//! The container is recognised by its magic number, never by the file name. Records are parsed
//! with `pcap-parser` in a large reusable buffer (no copy per packet); this module adds what an
//! analyser needs around it: frame numbering, per-interface link types and timestamp resolution
//! for pcapng, and a precise account of how reading ended (cleanly, cut off mid-record, damaged).

use super::stream::{Pausable, PauseState};
use super::{Frame, LinkType, TimestampNs};
use pcap_parser::pcapng::Block;
use pcap_parser::traits::PcapReaderIterator;
use pcap_parser::{PcapBlockOwned, PcapError};
use std::fmt;
use std::io::{self, Read};
use std::sync::Arc;

/// Largest record accepted in a pcap file; Wireshark refuses larger ones too
/// (`WTAP_MAX_PACKET_SIZE_STANDARD`).
pub const MAX_RECORD_LEN: u32 = 256 * 1024;
/// Largest packet Wireshark reads for a link type (`wtap_max_snaplen_for_encap`): a pcapng
/// packet block capturing more is an error there ("cap_len N is larger than M"), so reading
/// stops at it here too, as for a pcap record over [`MAX_RECORD_LEN`].
fn max_packet_len(lt: LinkType) -> u32 {
    match lt.0 {
        // D-Bus and USBPcap: 128 MiB (in practice bounded by `MAX_BLOCK_LEN` here).
        231 | 249 => 128 * 1024 * 1024,
        // EBHSCR: 8 MiB.
        279 => 8 * 1024 * 1024,
        _ => MAX_RECORD_LEN,
    }
}

/// Why packet `number`, capturing `len` bytes of link type `lt`, stops the reading, if it is
/// larger than Wireshark reads for that link type.
fn packet_too_large(number: u64, len: u64, lt: LinkType) -> Option<String> {
    let max = max_packet_len(lt);
    (len > u64::from(max)).then(|| {
        format!(
            "packet {number} claims {len} captured bytes, more than the {max}-byte maximum for {lt}"
        )
    })
}

/// A record that is not a packet: counted and numbered, never decoded.
fn record_only(link_type: LinkType) -> Frame<'static> {
    Frame {
        number: 0,
        ts: 0,
        link_type,
        wire_len: 0,
        data: &[],
    }
}

/// A record block whose total length `len` is below `min` is damage, as Wireshark says.
fn record_block(len: u32, min: u32, what: &str) -> Result<(), String> {
    if len < min {
        Err(format!(
            "total block length {len} of a {what} block is too small (< {min})"
        ))
    } else {
        Ok(())
    }
}

/// The smallest total length of a Sysdig event block of type `block_type`, for the types
/// Wireshark reads as records (those with flags it leaves to plugins and skips).
fn sysdig_event_min_len(block_type: u32) -> Option<u32> {
    match block_type {
        0x204 => Some(36),
        0x216 | 0x221 => Some(40),
        _ => None,
    }
}

/// Largest pcapng block accepted (a packet block of `MAX_RECORD_LEN` plus options, or a large
/// name-resolution block).
pub const MAX_BLOCK_LEN: u32 = 16 * 1024 * 1024;
/// Read buffer: large reads, one allocation for the whole file.
const BUFFER_LEN: usize = 4 * 1024 * 1024;

const PCAPNG_MAGIC: [u8; 4] = [0x0a, 0x0d, 0x0d, 0x0a];

/// The container format of a capture, as found from its magic number.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    Pcap { big_endian: bool, nanosecond: bool },
    PcapNg,
}

impl fmt::Display for Format {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Format::Pcap {
                big_endian,
                nanosecond,
            } => write!(
                f,
                "pcap ({}, {})",
                if *big_endian {
                    "big-endian"
                } else {
                    "little-endian"
                },
                if *nanosecond {
                    "nanosecond timestamps"
                } else {
                    "microsecond timestamps"
                }
            ),
            Format::PcapNg => write!(f, "pcapng"),
        }
    }
}

/// Why a capture could not be read at all.
#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    #[error("{0}")]
    Io(#[from] io::Error),
    #[error("empty file: no capture header")]
    Empty,
    #[error("file too short to be a capture ({0} bytes)")]
    TooShort(usize),
    #[error("not a pcap or pcapng capture (it starts with {0}){1}")]
    NotACapture(String, &'static str),
    #[error("damaged pcapng section header: {0}")]
    BadSectionHeader(&'static str),
}

/// How reading a capture ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ReadEnd {
    /// Every record was read.
    Complete,
    /// The file ends in the middle of a record (a capture cut off when tcpdump was killed).
    CutOff { offset: u64 },
    /// A record or block could not be parsed; nothing after it can be trusted.
    Damaged { offset: u64, reason: String },
    /// The operating system reported an error while reading.
    ReadFailed { offset: u64 },
    /// Whoever was reading stopped at this byte (the frames were not all wanted).
    Stopped { offset: u64 },
    /// A [`Pausable`] input had nothing to read for a while; reading again goes on from here.
    Paused { offset: u64 },
}

impl fmt::Display for ReadEnd {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ReadEnd::Complete => write!(f, "complete"),
            ReadEnd::CutOff { offset } => write!(
                f,
                "the file is cut off in the middle of a record at byte {offset}; that last partial record was skipped"
            ),
            ReadEnd::Damaged { offset, reason } => write!(
                f,
                "the file is damaged at byte {offset} ({reason}); reading stopped there"
            ),
            ReadEnd::ReadFailed { offset } => {
                write!(
                    f,
                    "a read error occurred at byte {offset}; reading stopped there"
                )
            }
            ReadEnd::Stopped { offset } => write!(f, "reading was stopped at byte {offset}"),
            ReadEnd::Paused { offset } => write!(f, "the input paused at byte {offset}"),
        }
    }
}

#[derive(Clone, Copy, Debug)]
struct Interface {
    link_type: LinkType,
    /// Timestamp units per second.
    resolution: u64,
    offset_secs: i64,
}

/// Reads frames from one capture.
pub struct CaptureReader {
    inner: Box<dyn PcapReaderIterator + Send>,
    /// What the blocks read so far say: format, link types, interfaces, numbering.
    blocks: Blocks,
    /// Read buffer size to begin with; a record that does not fit grows it.
    buffer_len: usize,
    /// Set when the input is [`Pausable`]: a failed read may be a pause, not an error.
    pause: Option<Arc<PauseState>>,
}

/// What reading the blocks of a capture keeps: it turns each block into a frame (or nothing),
/// apart from the reader's buffer, which the block borrows.
#[derive(Debug)]
struct Blocks {
    format: Format,
    /// pcap: the file's link type; pcapng: interfaces of the current section.
    pcap_link: LinkType,
    interfaces: Vec<Interface>,
    pcapng_big_endian: bool,
    next_number: u64,
    /// Link types seen, in order of first appearance (pcapng interfaces, or the pcap header).
    link_types: Vec<LinkType>,
    /// Packet blocks naming an interface that was never described (counted, skipped).
    orphan_packets: u64,
    /// Who takes the secrets of Decryption Secrets Blocks (no frame numbers: not records).
    secrets: Secrets,
}

/// Takes a Decryption Secrets Block's type, secrets, and the number the next frame will have.
type TakeSecrets = Box<dyn FnMut(u32, &[u8], u64) + Send>;

/// What is done with a pcapng's decryption secrets: given to a callback with their type and
/// data (padding removed), or passed over when nobody takes them.
#[derive(Default)]
struct Secrets {
    take: Option<TakeSecrets>,
}

impl fmt::Debug for Secrets {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Secrets")
            .field("taken", &self.take.is_some())
            .finish()
    }
}

impl fmt::Debug for CaptureReader {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CaptureReader")
            .field("format", &self.blocks.format)
            .finish_non_exhaustive()
    }
}

/// Reads `buf.len()` bytes unless the input ends first; returns how many were read.
fn read_up_to(r: &mut impl Read, buf: &mut [u8]) -> io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        let Some(rest) = buf.get_mut(n..) else {
            break;
        };
        match r.read(rest) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(n)
}

fn hex_prefix(b: &[u8]) -> String {
    b.iter()
        .take(4)
        .map(|x| format!("{x:02x}"))
        .collect::<Vec<_>>()
        .join(" ")
}

impl CaptureReader {
    /// Opens a capture from any byte source (a file, standard input). The header is read and
    /// checked here, so that "not a capture" is an error before any frame is produced.
    pub fn new<R: Read + Send + 'static>(input: R) -> Result<CaptureReader, OpenError> {
        CaptureReader::with_buffer_len(input, BUFFER_LEN)
    }

    /// As [`CaptureReader::new`], reading in a buffer of `buffer_len` bytes to begin with
    /// (at least 64 KiB; it grows for a record larger than it). A small buffer suits many small
    /// inputs, as in fuzzing, where allocating 4 MiB per input dominates.
    pub fn with_buffer_len<R: Read + Send + 'static>(
        mut input: R,
        buffer_len: usize,
    ) -> Result<CaptureReader, OpenError> {
        let buffer_len = buffer_len.max(64 * 1024);
        // Read exactly the file header first, so the probe sees a whole header even when the
        // input is a pipe that delivers a few bytes at a time.
        let mut magic = [0u8; 4];
        let n = read_up_to(&mut input, &mut magic)?;
        if n == 0 {
            return Err(OpenError::Empty);
        }
        if n < 4 {
            return Err(OpenError::TooShort(n));
        }
        let mut head = magic.to_vec();
        let format = if magic == PCAPNG_MAGIC {
            // Section header block: type, total length, byte-order magic.
            let mut fixed = [0u8; 8];
            let k = read_up_to(&mut input, &mut fixed)?;
            if k < 8 {
                return Err(OpenError::TooShort(4 + k));
            }
            let bom = [fixed[4], fixed[5], fixed[6], fixed[7]];
            let big_endian = match bom {
                [0x1a, 0x2b, 0x3c, 0x4d] => true,
                [0x4d, 0x3c, 0x2b, 0x1a] => false,
                _ => return Err(OpenError::BadSectionHeader("unknown byte-order magic")),
            };
            let len_bytes = [fixed[0], fixed[1], fixed[2], fixed[3]];
            let total = if big_endian {
                u32::from_be_bytes(len_bytes)
            } else {
                u32::from_le_bytes(len_bytes)
            };
            if !(28..=MAX_BLOCK_LEN).contains(&total) || total % 4 != 0 {
                return Err(OpenError::BadSectionHeader("impossible block length"));
            }
            head.extend_from_slice(&fixed);
            let mut rest = vec![0u8; total as usize - 12];
            let k = read_up_to(&mut input, &mut rest)?;
            if k < rest.len() {
                return Err(OpenError::TooShort(head.len() + k));
            }
            head.extend_from_slice(&rest);
            Format::PcapNg
        } else {
            let format = match magic {
                [0xd4, 0xc3, 0xb2, 0xa1] => Format::Pcap {
                    big_endian: false,
                    nanosecond: false,
                },
                [0xa1, 0xb2, 0xc3, 0xd4] => Format::Pcap {
                    big_endian: true,
                    nanosecond: false,
                },
                [0x4d, 0x3c, 0xb2, 0xa1] => Format::Pcap {
                    big_endian: false,
                    nanosecond: true,
                },
                [0xa1, 0xb2, 0x3c, 0x4d] => Format::Pcap {
                    big_endian: true,
                    nanosecond: true,
                },
                _ => {
                    let hint = match magic {
                        [0x1f, 0x8b, ..] => " — gzip-compressed? decompress it first",
                        [0x28, 0xb5, 0x2f, 0xfd] => " — zstd-compressed? decompress it first",
                        [0x34, 0xcd, 0xb2, 0xa1] | [0xa1, 0xb2, 0xcd, 0x34] => {
                            " — a Kuznetzov 'modified pcap', which is not supported"
                        }
                        _ => "",
                    };
                    return Err(OpenError::NotACapture(hex_prefix(&magic), hint));
                }
            };
            let mut rest = [0u8; 20];
            let k = read_up_to(&mut input, &mut rest)?;
            if k < 20 {
                return Err(OpenError::TooShort(4 + k));
            }
            head.extend_from_slice(&rest);
            format
        };
        let chained = io::Cursor::new(head).chain(input);
        let inner = pcap_parser::create_reader(buffer_len, chained).map_err(|e| match e {
            PcapError::Eof => OpenError::Empty,
            PcapError::Incomplete(_) | PcapError::UnexpectedEof => OpenError::TooShort(0),
            _ => OpenError::BadSectionHeader("header not recognised"),
        })?;
        Ok(CaptureReader {
            inner,
            blocks: Blocks {
                format,
                pcap_link: LinkType(0),
                interfaces: Vec::new(),
                pcapng_big_endian: false,
                next_number: 1,
                link_types: Vec::new(),
                orphan_packets: 0,
                secrets: Secrets::default(),
            },
            buffer_len,
            pause: None,
        })
    }

    /// Opens a capture arriving through a pipe: once pauses are allowed
    /// ([`CaptureReader::allow_pauses`]), reading stops with [`ReadEnd::Paused`] when the input
    /// has been quiet for a while, and goes on where it was when called again.
    pub fn pausable(input: Pausable) -> Result<CaptureReader, OpenError> {
        let state = input.state();
        let mut reader = CaptureReader::new(input)?;
        reader.pause = Some(state);
        Ok(reader)
    }

    /// From now on a read of a [`Pausable`] input that finds no byte within `wait_ms` (or as
    /// soon as `wake` becomes readable) ends with [`ReadEnd::Paused`]; other inputs never pause.
    pub fn allow_pauses(&self, wait_ms: u64, wake: Option<std::os::fd::OwnedFd>) {
        if let Some(p) = &self.pause {
            p.allow(wait_ms, wake);
        }
    }

    /// Why a read failed: the input paused ([`ReadEnd::Paused`]) or an error.
    fn read_failed(&self, offset: u64) -> ReadEnd {
        match &self.pause {
            Some(p) if p.take_paused() => ReadEnd::Paused { offset },
            _ => ReadEnd::ReadFailed { offset },
        }
    }

    pub fn format(&self) -> Format {
        self.blocks.format
    }

    /// Link types seen so far, in order of first appearance.
    pub fn link_types(&self) -> &[LinkType] {
        &self.blocks.link_types
    }

    /// Gives the secrets of each pcapng Decryption Secrets Block read from now on to `take`
    /// (its secrets type, its secrets without padding, and the number of the first frame
    /// after it).
    pub fn on_secrets(&mut self, take: impl FnMut(u32, &[u8], u64) + Send + 'static) {
        self.blocks.secrets.take = Some(Box::new(take));
    }

    /// Number of frames read so far.
    pub fn frames_read(&self) -> u64 {
        self.blocks.next_number - 1
    }

    /// Bytes of the file consumed so far.
    pub fn bytes_read(&self) -> u64 {
        self.inner.consumed() as u64
    }

    /// Calls `f` for every frame, in file order, and says how reading ended.
    pub fn for_each_frame(&mut self, mut f: impl FnMut(&Frame<'_>)) -> ReadEnd {
        self.for_each_frame_while(|fr| {
            f(fr);
            true
        })
    }

    /// As [`CaptureReader::for_each_frame`], until `f` returns false: reading stops after that
    /// frame ([`ReadEnd::Stopped`]).
    pub fn for_each_frame_while(&mut self, mut f: impl FnMut(&Frame<'_>) -> bool) -> ReadEnd {
        loop {
            let offset = self.inner.consumed() as u64;
            if let Some(reason) = self.impossible_block() {
                return ReadEnd::Damaged { offset, reason };
            }
            let step = match self.inner.next() {
                Ok((len, block)) => {
                    let frame = match self.blocks.frame_of(block) {
                        Ok(f) => f,
                        Err(reason) => return ReadEnd::Damaged { offset, reason },
                    };
                    if let Some(mut fr) = frame {
                        fr.number = self.blocks.next_number;
                        self.blocks.next_number += 1;
                        if !f(&fr) {
                            return ReadEnd::Stopped {
                                offset: offset + len as u64,
                            };
                        }
                    }
                    Step::Consume(len)
                }
                Err(PcapError::Eof) => return ReadEnd::Complete,
                Err(PcapError::Incomplete(_)) => match self.oversized() {
                    Some(reason) => return ReadEnd::Damaged { offset, reason },
                    None => Step::Refill,
                },
                Err(PcapError::UnexpectedEof) => {
                    return match self.oversized() {
                        Some(reason) => ReadEnd::Damaged { offset, reason },
                        None => ReadEnd::CutOff { offset },
                    };
                }
                Err(PcapError::BufferTooSmall) => Step::Grow,
                Err(PcapError::ReadError) => return ReadEnd::ReadFailed { offset },
                Err(PcapError::HeaderNotRecognized) => {
                    return ReadEnd::Damaged {
                        offset,
                        reason: "header not recognised".into(),
                    };
                }
                Err(PcapError::NomError(_, kind)) | Err(PcapError::OwnedNomError(_, kind)) => {
                    return ReadEnd::Damaged {
                        offset,
                        reason: self.describe_damage(kind),
                    };
                }
            };
            match step {
                // Without the shift `consume` makes once half the buffer is read (a copy of the
                // unread half): `refill` moves only the partial record at the end.
                Step::Consume(len) => self.inner.consume_noshift(len),
                Step::Refill => {
                    if self.inner.refill().is_err() {
                        return self.read_failed(offset);
                    }
                }
                Step::Grow => {
                    let need = self.declared_len();
                    let limit = match self.blocks.format {
                        Format::Pcap { .. } => MAX_RECORD_LEN as u64 + 16,
                        Format::PcapNg => MAX_BLOCK_LEN as u64,
                    };
                    match need {
                        Some(n) if n <= limit => {
                            let size = (n as usize).max(self.buffer_len) * 2;
                            if !self.inner.grow(size) {
                                return ReadEnd::Damaged {
                                    offset,
                                    reason: format!("cannot buffer a record of {n} bytes"),
                                };
                            }
                            if self.inner.refill().is_err() {
                                return self.read_failed(offset);
                            }
                        }
                        Some(n) => {
                            return ReadEnd::Damaged {
                                offset,
                                reason: format!(
                                    "record {} claims {n} bytes, more than the {limit}-byte maximum",
                                    self.blocks.next_number
                                ),
                            };
                        }
                        None => {
                            return ReadEnd::Damaged {
                                offset,
                                reason: "record header unreadable".into(),
                            };
                        }
                    }
                }
            }
        }
    }

    /// Why the record at the read position cannot be read, when it claims more than the limit.
    fn oversized(&self) -> Option<String> {
        let limit = match self.blocks.format {
            Format::Pcap { .. } => u64::from(MAX_RECORD_LEN) + 16,
            Format::PcapNg => u64::from(MAX_BLOCK_LEN),
        };
        let n = self.declared_len()?;
        (n > limit).then(|| {
            format!(
                "record {} claims {n} bytes, more than the {limit}-byte maximum",
                self.blocks.next_number
            )
        })
    }

    /// The length the record or block at the read position says it has.
    fn declared_len(&self) -> Option<u64> {
        let d = self.inner.data();
        match self.blocks.format {
            Format::Pcap { big_endian, .. } => {
                let b: [u8; 4] = d.get(8..12)?.try_into().ok()?;
                let caplen = if big_endian {
                    u32::from_be_bytes(b)
                } else {
                    u32::from_le_bytes(b)
                };
                Some(u64::from(caplen) + 16)
            }
            Format::PcapNg => {
                let b: [u8; 4] = d.get(4..8)?.try_into().ok()?;
                let len = if self.blocks.pcapng_big_endian {
                    u32::from_be_bytes(b)
                } else {
                    u32::from_le_bytes(b)
                };
                Some(u64::from(len))
            }
        }
    }

    /// A pcapng block (other than a section header, whose byte order is its own) declaring a
    /// length below the 12 bytes every block has. pcap-parser 0.17 checks some block types only
    /// against a smaller minimum (4 bytes for a Process Information Block) and then subtracts
    /// 12, so such a block must not reach it.
    fn impossible_block(&self) -> Option<String> {
        if self.blocks.format != Format::PcapNg {
            return None;
        }
        let d = self.inner.data();
        let ty: [u8; 4] = d.get(..4)?.try_into().ok()?;
        if ty == [0x0a, 0x0d, 0x0d, 0x0a] {
            return None;
        }
        (self.declared_len()? < 12)
            .then(|| self.describe_damage(pcap_parser::nom::error::ErrorKind::Verify))
    }

    fn describe_damage(&self, kind: pcap_parser::nom::error::ErrorKind) -> String {
        let frame = self.blocks.next_number;
        match (self.blocks.format, self.declared_len()) {
            (Format::PcapNg, Some(len)) if len < 12 || len % 4 != 0 => {
                format!("block before frame {frame} has an impossible length of {len} bytes")
            }
            (Format::PcapNg, _) => {
                format!("malformed pcapng block before frame {frame} ({kind:?})")
            }
            (Format::Pcap { .. }, _) => format!("malformed record {frame} ({kind:?})"),
        }
    }
}

enum Step {
    Consume(usize),
    Refill,
    Grow,
}

impl Blocks {
    fn note_link_type(&mut self, lt: LinkType) {
        if !self.link_types.contains(&lt) {
            self.link_types.push(lt);
        }
    }

    /// The frame a block holds (not yet numbered), `None` for a block that is not a frame
    /// (headers, interface descriptions, unknown blocks), or why the file cannot be read on.
    // Once per record on the reading path: inlined, it costs what the match cost in place
    // (out of line, 1 % more instructions on small packets, 2.6 % on bulk).
    #[inline(always)]
    fn frame_of<'b>(&mut self, block: PcapBlockOwned<'b>) -> Result<Option<Frame<'b>>, String> {
        Ok(match block {
            PcapBlockOwned::LegacyHeader(h) => {
                self.pcap_link = LinkType(h.network.0 as u32);
                let lt = self.pcap_link;
                self.note_link_type(lt);
                None
            }
            PcapBlockOwned::Legacy(b) if b.caplen > MAX_RECORD_LEN => {
                return Err(format!(
                    "record {} claims {} bytes, more than the {}-byte maximum",
                    self.next_number,
                    u64::from(b.caplen) + 16,
                    u64::from(MAX_RECORD_LEN) + 16
                ));
            }
            PcapBlockOwned::Legacy(b) => {
                let nanos = match self.format {
                    Format::Pcap { nanosecond, .. } if nanosecond => i64::from(b.ts_usec),
                    _ => i64::from(b.ts_usec) * 1000,
                };
                Some(Frame {
                    number: 0,
                    ts: i64::from(b.ts_sec) * 1_000_000_000 + nanos,
                    link_type: self.pcap_link,
                    wire_len: b.origlen,
                    data: b.data,
                })
            }
            PcapBlockOwned::NG(block) => match block {
                Block::SectionHeader(shb) => {
                    self.interfaces.clear();
                    self.pcapng_big_endian = shb.big_endian();
                    None
                }
                Block::InterfaceDescription(idb) => {
                    let lt = LinkType(idb.linktype.0 as u32);
                    let resolution = pcap_parser::pcapng::build_ts_resolution(idb.if_tsresol)
                        .filter(|r| *r > 0)
                        .unwrap_or(1_000_000);
                    self.interfaces.push(Interface {
                        link_type: lt,
                        resolution,
                        offset_secs: idb.if_tsoffset,
                    });
                    self.note_link_type(lt);
                    None
                }
                Block::EnhancedPacket(epb) => {
                    let ifc = self.interfaces.get(epb.if_id as usize).copied();
                    if let Some(ifc) = ifc
                        && let Some(reason) =
                            packet_too_large(self.next_number, u64::from(epb.caplen), ifc.link_type)
                    {
                        return Err(reason);
                    }
                    match ifc {
                        Some(ifc) => {
                            let raw = (u64::from(epb.ts_high) << 32) | u64::from(epb.ts_low);
                            Some(Frame {
                                number: 0,
                                ts: ts_from_units(raw, ifc),
                                link_type: ifc.link_type,
                                wire_len: epb.origlen,
                                data: epb.data.get(..epb.caplen as usize).unwrap_or(epb.data),
                            })
                        }
                        None => {
                            self.orphan_packets += 1;
                            Some(Frame {
                                number: 0,
                                ts: 0,
                                link_type: LinkType::NO_INTERFACE,
                                wire_len: epb.origlen,
                                data: &[],
                            })
                        }
                    }
                }
                Block::SimplePacket(spb) => {
                    // A simple packet block belongs to interface 0 and has no
                    // timestamp.
                    let ifc = self.interfaces.first().copied();
                    if ifc.is_none() {
                        self.orphan_packets += 1;
                    }
                    let data = spb.data.get(..spb.origlen as usize).unwrap_or(spb.data);
                    if let Some(reason) = ifc.and_then(|i| {
                        packet_too_large(self.next_number, data.len() as u64, i.link_type)
                    }) {
                        return Err(reason);
                    }
                    Some(Frame {
                        number: 0,
                        ts: 0,
                        link_type: ifc.map_or(LinkType::NO_INTERFACE, |i| i.link_type),
                        wire_len: spb.origlen,
                        data,
                    })
                }
                Block::Unknown(u) if u.block_type == 2 => {
                    // The obsolete Packet Block is still a packet: Wireshark
                    // numbers it. capdiag counts it without decoding it.
                    self.orphan_packets += 1;
                    Some(Frame {
                        number: 0,
                        ts: 0,
                        link_type: LinkType::NO_INTERFACE,
                        wire_len: 0,
                        data: &[],
                    })
                }
                // Blocks that are records but not packets: Wireshark gives each a
                // frame number (and stops at one too short to be one), so they
                // are counted here as frames of a pseudo link type.
                Block::SystemdJournalExport(b) => {
                    match record_block(b.block_len1, 35, "systemd journal export") {
                        Ok(()) => Some(record_only(LinkType::SYSTEMD_JOURNAL)),
                        Err(reason) => return Err(reason),
                    }
                }
                Block::Custom(b) => match record_block(b.block_len1, 16, "custom") {
                    Ok(()) => Some(record_only(LinkType::PCAPNG_CUSTOM)),
                    Err(reason) => return Err(reason),
                },
                Block::DecryptionSecrets(dsb) => {
                    if let Some(take) = &mut self.secrets.take {
                        let len = (dsb.secrets_len as usize).min(dsb.data.len());
                        let data = dsb.data.get(..len).unwrap_or_default();
                        take(dsb.secrets_type.0, data, self.next_number);
                    }
                    None
                }
                Block::Unknown(u) => match sysdig_event_min_len(u.block_type) {
                    Some(min) => match record_block(u.block_len1, min, "Sysdig event") {
                        Ok(()) => Some(record_only(LinkType::SYSDIG_EVENT)),
                        Err(reason) => return Err(reason),
                    },
                    None => None,
                },
                _ => None,
            },
        })
    }
}

fn ts_from_units(raw: u64, ifc: Interface) -> TimestampNs {
    let secs = raw / ifc.resolution;
    let frac = raw % ifc.resolution;
    let nanos = (u128::from(frac) * 1_000_000_000 / u128::from(ifc.resolution)) as i64;
    i64::try_from(secs)
        .unwrap_or(i64::MAX)
        .saturating_add(ifc.offset_secs)
        .saturating_mul(1_000_000_000)
        .saturating_add(nanos)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Timestamps in whole seconds (`if_tsresol` 0) past what 63 bits hold saturate; they do
    /// not wrap to a time before 1970.
    #[test]
    fn huge_timestamps_saturate() {
        let ifc = Interface {
            link_type: LinkType::ETHERNET,
            resolution: 1,
            offset_secs: 0,
        };
        assert_eq!(ts_from_units(u64::MAX, ifc), i64::MAX);
        assert_eq!(ts_from_units(1 << 63, ifc), i64::MAX);
        assert_eq!(ts_from_units(1_700_000_000, ifc), 1_700_000_000_000_000_000);
    }
}
