//! Incremental HTTP/1.x parsing of one direction of a connection.
//!
//! Bytes arrive in whatever pieces TCP delivered them; the parser keeps only the header block
//! being assembled and a bounded body prefix. It finds HTTP by content (a request line or a
//! status line), not by port. After a gap, or when the capture began in the middle of a
//! message, it resynchronises at the next line that starts a message. Decisions that need the
//! other direction (how a response body is delimited depends on the request method) are asked of
//! the [`MessageSink`].

use super::head::*;
use super::message::{Anomaly, Message};
use super::start_line::*;
use std::mem::MaybeUninit;

pub use super::head::{HeadAhead, HeadParsed, parse_ahead, parse_ahead_into};
pub use super::start_line::is_start_line;

/// Bounds on what one direction may hold.
#[derive(Clone, Copy, Debug)]
pub struct Limits {
    /// Largest header block (start line + headers).
    pub max_header_bytes: usize,
    /// Most header lines in one message.
    pub max_headers: usize,
    /// Body bytes kept per message.
    pub body_prefix: usize,
    /// Which messages keep a body prefix at all.
    pub bodies: BodyPolicy,
}

/// Which message bodies are worth keeping: every one (`capdiag http --show-body`), or only
/// those of error responses (status 300 and above, but 304), which are all the rules read.
/// Keeping none of a bulk transfer is what lets a capture be read at disk speed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BodyPolicy {
    All,
    ErrorResponses,
}

impl Default for Limits {
    fn default() -> Limits {
        Limits {
            max_header_bytes: 64 * 1024,
            max_headers: 256,
            body_prefix: 64 * 1024,
            bodies: BodyPolicy::ErrorResponses,
        }
    }
}

/// How the body of a message whose header block was just parsed is delimited
/// (RFC 9112 §6.3).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BodyKind {
    None,
    Length(u64),
    Chunked,
    UntilClose,
    /// No body, and what follows on this direction is no longer HTTP (101, CONNECT).
    Tunnel,
}

/// Receives what the parser finds.
pub trait MessageSink {
    /// A header block was parsed; say how its body is delimited.
    fn head(&mut self, msg: &mut Message) -> BodyKind;
    /// A message ended (completely, or cut short: see [`Message::complete`]).
    fn complete(&mut self, msg: Box<Message>);
}

pub use crate::flow::Origin;

/// Per-direction counters of what was lost or limited.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ParserStats {
    /// Header blocks longer than the limit (skipped).
    pub header_too_large: u64,
    /// Messages with more header lines than the limit (skipped).
    pub too_many_headers: u64,
    /// Header blocks that did not parse (skipped).
    pub bad_headers: u64,
    /// Partial header blocks lost in a gap or at the end of the stream.
    pub heads_lost: u64,
    /// Times the parser lost sync and searched for the next message.
    pub resyncs: u64,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum ChunkState {
    Size,
    Data(u64),
    DataEnd,
    Trailer,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Body {
    Length(u64),
    Chunked(ChunkState),
    UntilClose,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum State {
    /// Start of the stream: is this HTTP at all?
    Detect,
    /// Expecting the next message of a stream known to be HTTP.
    Head,
    /// Lost: looking for a line that starts a message.
    Resync,
    Body(Body),
    /// Not HTTP (any more): bytes are ignored.
    Ignore,
}

/// Longest chunk-size or trailer line accepted.
const MAX_CHUNK_LINE: usize = 4096;
/// Longest line considered when looking for a message start.
const MAX_START_LINE: usize = 8192;

pub struct Parser {
    state: State,
    /// Header block (or start line, or resync line) being assembled.
    buf: Vec<u8>,
    buf_origin: Option<Origin>,
    /// Chunk-size / trailer line being assembled.
    line: Vec<u8>,
    cur: Option<Box<Message>>,
    /// Body bytes the current message may still store.
    room: usize,
    /// Switch to `Ignore` once the current message ends.
    tunnel_after: bool,
    /// Whether any message was ever recognised on this direction.
    pub is_http: bool,
    limits: Limits,
    pub stats: ParserStats,
    /// A header block parsed ahead from the bytes at this address (see [`Parser::offer`]).
    offered: Option<(usize, HeadParsed)>,
}

impl Parser {
    pub fn new(limits: Limits) -> Parser {
        Parser {
            state: State::Detect,
            buf: Vec::new(),
            buf_origin: None,
            line: Vec::new(),
            cur: None,
            room: 0,
            tunnel_after: false,
            is_http: false,
            limits,
            stats: ParserStats::default(),
            offered: None,
        }
    }

    /// Offers the parse of a header block at the start of `bytes` (made by [`parse_ahead`], or
    /// by [`parse_ahead_into`] perhaps on another thread), for when the parser is fed exactly
    /// these bytes: it is used in place of parsing them again, and is what parsing them gives.
    /// The parser's next attempt to parse a whole block where it lies takes it (using it only
    /// if it is for those bytes); [`Parser::withdraw`] drops it if no attempt came.
    pub fn offer(&mut self, bytes: &[u8], head: HeadParsed) {
        self.offered = Some((bytes.as_ptr() as usize, head));
    }

    /// Drops an offered parse that was not used (so that it cannot be taken for other bytes
    /// at the same address later).
    pub fn withdraw(&mut self) {
        self.offered = None;
    }

    /// The stream did not start with its SYN: the first bytes may be the middle of a message,
    /// so look for the next message start instead of judging the stream by its first line.
    pub fn start_midstream(&mut self) {
        if self.state == State::Detect {
            self.state = State::Resync;
        }
    }

    /// Stop parsing this direction after the current message (the other side switched
    /// protocols).
    pub fn tunnel_after_current(&mut self) {
        if self.cur.is_none() && matches!(self.state, State::Head | State::Detect | State::Resync) {
            self.state = State::Ignore;
            self.buf.clear();
        } else {
            self.tunnel_after = true;
        }
    }

    pub fn is_ignoring(&self) -> bool {
        self.state == State::Ignore
    }

    /// Whether a message is in progress (its body not yet complete).
    pub fn in_message(&self) -> bool {
        self.cur.is_some()
    }

    fn lose_sync(&mut self) {
        self.stats.resyncs += 1;
        self.buf.clear();
        self.buf_origin = None;
        self.state = State::Resync;
    }

    fn append(&mut self, bytes: &[u8], o: Origin) {
        if self.buf.is_empty() {
            self.buf_origin = Some(o);
        }
        self.buf.extend_from_slice(bytes);
    }

    /// Parses the bytes of one chunk of the stream.
    // Inlined into its callers: the plain-HTTP path and the reader of decrypted TLS each get
    // their own copy (with two callers it was no longer inlined, 1.5 % more instructions on
    // plain HTTP).
    #[inline(always)]
    pub fn feed(&mut self, data: &[u8], o: Origin, sink: &mut dyn MessageSink) {
        let mut pos = 0;
        while pos < data.len() {
            let rest = data.get(pos..).unwrap_or_default();
            pos += match self.state {
                State::Ignore => return,
                State::Detect => self.detect(rest, o),
                State::Resync => self.resync(rest, o),
                State::Head => self.head(rest, o, sink),
                State::Body(b) => self.body(b, rest, o, sink),
            };
        }
    }

    /// First line of the stream: HTTP or not.
    fn detect(&mut self, rest: &[u8], o: Origin) -> usize {
        match memchr::memchr(b'\n', rest) {
            None => {
                let long = self.buf.len() + rest.len() > MAX_START_LINE;
                self.append(rest, o);
                if long {
                    if begins_request_line(&self.buf) {
                        // The long first line of a request (a long presigned URL, say)
                        // arriving in pieces: the header block takes it, up to its own limit.
                        self.state = State::Head;
                    } else {
                        self.state = State::Ignore;
                        self.buf.clear();
                    }
                }
                rest.len()
            }
            Some(nl) if self.buf.is_empty() => {
                // The whole first line is in this chunk: decide on it where it lies and leave
                // the message to `head`, which parses a whole header block without copying.
                if is_start_line(rest.get(..nl).unwrap_or_default()) {
                    self.state = State::Head;
                    0
                } else {
                    self.state = State::Ignore;
                    nl + 1
                }
            }
            Some(nl) => {
                self.append(rest.get(..=nl).unwrap_or_default(), o);
                let line = self.buf.strip_suffix(b"\n").unwrap_or(&self.buf);
                if is_start_line(line) {
                    self.state = State::Head;
                } else {
                    self.state = State::Ignore;
                    self.buf.clear();
                }
                nl + 1
            }
        }
    }

    /// Line by line, look for a message start; keep the partial last line.
    fn resync(&mut self, rest: &[u8], o: Origin) -> usize {
        let mut start = 0;
        while let Some(rel) = rest.get(start..).and_then(|s| memchr::memchr(b'\n', s)) {
            let nl = start + rel;
            let piece = rest.get(start..=nl).unwrap_or_default();
            let found = if self.buf.is_empty() {
                is_start_line(trim_nl(piece))
            } else {
                self.buf.extend_from_slice(piece);
                is_start_line(trim_nl(&self.buf))
            };
            if found {
                if self.buf.is_empty() {
                    self.append(piece, o);
                }
                self.state = State::Head;
                return nl + 1;
            }
            self.buf.clear();
            self.buf_origin = None;
            start = nl + 1;
        }
        let tail = rest.get(start..).unwrap_or_default();
        if self.buf.len() + tail.len() <= MAX_START_LINE {
            self.append(tail, o);
        } else {
            self.buf.clear();
            self.buf_origin = None;
        }
        rest.len()
    }

    fn head(&mut self, rest: &[u8], o: Origin, sink: &mut dyn MessageSink) -> usize {
        if self.buf.is_empty() {
            // Empty lines between messages are allowed (RFC 9112 §2.2).
            let skip = rest
                .iter()
                .take_while(|&&c| c == b'\r' || c == b'\n')
                .count();
            if skip > 0 {
                return skip;
            }
        }
        // The common case: a whole, well-formed header block at the start of this chunk.
        // Parse it where it lies and copy just the block.
        if self.buf.is_empty()
            && let Some(used) = self.parse_in_place(rest, o, sink)
        {
            return used;
        }
        // Otherwise a whole block that needs the lenient paths, or one still arriving.
        if self.buf.is_empty()
            && let Some(end) = find_head_end(rest, 0)
            && end <= self.limits.max_header_bytes
        {
            self.append(rest.get(..end).unwrap_or_default(), o);
            // Not a message: resynchronise from the next line, which may start one.
            return match self.parse_buffered(o, sink) {
                Some(()) => end,
                None => first_line(rest).len(),
            };
        }
        let old = self.buf.len();
        let from = old.saturating_sub(3);
        self.append(rest, o);
        // A stream known to be HTTP that goes on with something else has lost sync.
        if let Some(nl) = memchr::memchr(b'\n', self.buf.get(old..).unwrap_or_default()) {
            let first_line_end = old + nl;
            if memchr::memchr(b'\n', self.buf.get(..old).unwrap_or_default()).is_none()
                && !is_start_line(trim_nl(self.buf.get(..=first_line_end).unwrap_or_default()))
            {
                self.lose_sync();
                return first_line_end - old + 1;
            }
        }
        let Some(end) = find_head_end(&self.buf, from) else {
            if self.buf.len() > self.limits.max_header_bytes {
                self.stats.header_too_large += 1;
                self.lose_sync();
            }
            return rest.len();
        };
        if end > self.limits.max_header_bytes {
            self.stats.header_too_large += 1;
            let used = end - old;
            self.lose_sync();
            return used;
        }
        let used = end - old;
        self.buf.truncate(end);
        let _ = self.parse_buffered(o, sink);
        used
    }

    /// Parses a header block at the start of `rest` in place; `None` (nothing consumed) when
    /// the block is incomplete, too large, has more headers than fit the small index, or
    /// needs the lenient paths of [`Parser::parse_head`].
    fn parse_in_place(
        &mut self,
        rest: &[u8],
        o: Origin,
        sink: &mut dyn MessageSink,
    ) -> Option<usize> {
        let slots = fast_path_slots(self.limits.max_headers);
        let offered = self.offered.take().and_then(|(at, head)| {
            // The same address while both are alive: the same bytes, from the same start; and
            // parsed with the slots this parser would use.
            (at == rest.as_ptr() as usize && rest.len() >= head.len && head.slots == slots)
                .then_some(head)
        });
        let (len, start, positions, framing) = match offered {
            Some(head) => (head.len, head.start, head.headers, Some(head.framing)),
            None => {
                let mut positions = super::spare::index();
                let (len, start, framing) =
                    parse_in_place_slots(rest, self.limits.max_headers, &mut positions).ok()??;
                (len, start, positions, Some(framing))
            }
        };
        if len > self.limits.max_header_bytes {
            return None;
        }
        let head = rest.get(..len)?;
        let msg = super::spare::message(start, head, positions, framing, o.frame, o.ts);
        self.start_body(msg, o, sink);
        Some(len)
    }

    /// Parses the complete header block in `buf` and starts the message's body.
    fn parse_buffered(&mut self, o: Origin, sink: &mut dyn MessageSink) -> Option<()> {
        let origin = self.buf_origin.take().unwrap_or(o);
        let head = std::mem::take(&mut self.buf);
        match self.parse_head(head, origin) {
            Some(msg) => {
                self.start_body(msg, o, sink);
                Some(())
            }
            None => {
                self.lose_sync();
                None
            }
        }
    }

    fn parse_head(&mut self, mut head: Vec<u8>, origin: Origin) -> Option<Box<Message>> {
        let mut anomalies = Vec::new();
        // httparse insists on upper-case "HTTP/"; some servers do not.
        let version_at = if head
            .get(..5)
            .is_some_and(|v| v.eq_ignore_ascii_case(b"http/"))
        {
            Some(0)
        } else {
            let line_end = memchr::memchr(b'\n', &head).unwrap_or(head.len());
            let line = trim_cr(head.get(..line_end).unwrap_or_default());
            memchr::memrchr(b' ', line).map(|sp| sp + 1)
        };
        if let Some(at) = version_at
            && let Some(v) = head.get_mut(at..at + 5)
            && v != b"HTTP/"
            && v.eq_ignore_ascii_case(b"HTTP/")
        {
            v.copy_from_slice(b"HTTP/");
            anomalies.push(Anomaly::LowerCaseVersion);
        }
        let mut small = [const { MaybeUninit::uninit() }; INLINE_HEADERS];
        let first = small
            .get_mut(..fast_path_slots(self.limits.max_headers))
            .unwrap_or_default();
        let parsed = match parse_with(&head, first) {
            Err(httparse::Error::TooManyHeaders) if self.limits.max_headers > INLINE_HEADERS => {
                let mut big = Vec::new();
                big.resize_with(self.limits.max_headers, MaybeUninit::uninit);
                parse_with(&head, &mut big)
            }
            other => other,
        };
        let (start, positions, framing) = match parsed {
            Ok(((start, positions), framing)) => (start, positions, Some(framing)),
            Err(httparse::Error::TooManyHeaders) => {
                self.stats.too_many_headers += 1;
                return None;
            }
            Err(_) => match parse_lenient(&head, self.limits.max_headers)
                .filter(|_| is_start_line(trim_nl(first_line(&head))))
            {
                Some((start, positions)) => {
                    anomalies.push(Anomaly::MalformedStartLine);
                    (start, positions, None)
                }
                None => {
                    self.stats.bad_headers += 1;
                    return None;
                }
            },
        };
        let mut msg = Box::new(Message::new(
            start,
            head,
            positions,
            framing,
            origin.frame,
            origin.ts,
        ));
        for a in anomalies {
            msg.note(a);
        }
        Some(msg)
    }

    /// A header block was parsed into `msg` (at frame `o`): this direction is HTTP, and the
    /// message's body starts.
    fn start_body(&mut self, mut msg: Box<Message>, o: Origin, sink: &mut dyn MessageSink) {
        self.is_http = true;
        msg.last_frame = o.frame;
        msg.last_ts = o.ts;
        let keep = match self.limits.bodies {
            BodyPolicy::All => true,
            BodyPolicy::ErrorResponses => msg.status().is_some_and(|s| s >= 300 && s != 304),
        };
        self.room = if keep { self.limits.body_prefix } else { 0 };
        match sink.head(&mut msg) {
            BodyKind::None => self.finish(msg, o, true, sink),
            BodyKind::Tunnel => {
                self.finish(msg, o, true, sink);
                self.state = State::Ignore;
            }
            BodyKind::Length(0) => self.finish(msg, o, true, sink),
            BodyKind::Length(n) => {
                self.cur = Some(msg);
                self.state = State::Body(Body::Length(n));
            }
            BodyKind::Chunked => {
                self.cur = Some(msg);
                self.line.clear();
                self.state = State::Body(Body::Chunked(ChunkState::Size));
            }
            BodyKind::UntilClose => {
                self.cur = Some(msg);
                self.state = State::Body(Body::UntilClose);
            }
        }
    }

    fn finish(
        &mut self,
        mut msg: Box<Message>,
        o: Origin,
        complete: bool,
        sink: &mut dyn MessageSink,
    ) {
        msg.complete = complete;
        // Wireshark shows a message at the frame that holds its last byte (the FIN for a body
        // delimited by the close); one cut short is placed at the last frame that carried it.
        msg.frame = if complete { o.frame } else { msg.last_frame };
        msg.end_ts = o.ts;
        self.state = if self.tunnel_after {
            State::Ignore
        } else {
            State::Head
        };
        sink.complete(msg);
    }

    fn store(&mut self, bytes: &[u8], o: Origin) {
        if let Some(m) = self.cur.as_mut() {
            m.body.length += bytes.len() as u64;
            if self.room > 0 {
                let take = self.room.min(bytes.len());
                m.body
                    .prefix
                    .extend_from_slice(bytes.get(..take).unwrap_or_default());
                self.room -= take;
            }
            m.last_frame = o.frame;
            m.last_ts = o.ts;
            m.end_ts = o.ts;
        }
    }

    fn body(&mut self, b: Body, rest: &[u8], o: Origin, sink: &mut dyn MessageSink) -> usize {
        match b {
            Body::Length(remaining) => {
                let take = usize::try_from(remaining)
                    .unwrap_or(usize::MAX)
                    .min(rest.len());
                self.store(rest.get(..take).unwrap_or_default(), o);
                let left = remaining - take as u64;
                if left == 0 {
                    if let Some(msg) = self.cur.take() {
                        self.finish(msg, o, true, sink);
                    }
                } else {
                    self.state = State::Body(Body::Length(left));
                }
                take
            }
            Body::UntilClose => {
                self.store(rest, o);
                rest.len()
            }
            Body::Chunked(cs) => self.chunked(cs, rest, o, sink),
        }
    }

    fn chunked(
        &mut self,
        cs: ChunkState,
        rest: &[u8],
        o: Origin,
        sink: &mut dyn MessageSink,
    ) -> usize {
        if let Some(m) = self.cur.as_mut() {
            m.last_frame = o.frame;
            m.last_ts = o.ts;
        }
        match cs {
            ChunkState::Size | ChunkState::Trailer => {
                let Some(nl) = memchr::memchr(b'\n', rest) else {
                    if self.line.len() + rest.len() > MAX_CHUNK_LINE {
                        self.abandon(Anomaly::BadChunkSize, o, sink);
                    } else {
                        self.line.extend_from_slice(rest);
                    }
                    return rest.len();
                };
                self.line
                    .extend_from_slice(rest.get(..nl).unwrap_or_default());
                let line = trim_cr(&self.line);
                if cs == ChunkState::Trailer {
                    if line.is_empty() {
                        self.line.clear();
                        if let Some(msg) = self.cur.take() {
                            self.finish(msg, o, true, sink);
                        }
                    } else {
                        self.line.clear();
                    }
                    return nl + 1;
                }
                match parse_chunk_size(line) {
                    Some(0) => {
                        self.line.clear();
                        self.state = State::Body(Body::Chunked(ChunkState::Trailer));
                    }
                    Some(n) => {
                        self.line.clear();
                        self.state = State::Body(Body::Chunked(ChunkState::Data(n)));
                    }
                    None => {
                        self.line.clear();
                        self.abandon(Anomaly::BadChunkSize, o, sink);
                    }
                }
                nl + 1
            }
            ChunkState::Data(remaining) => {
                let take = usize::try_from(remaining)
                    .unwrap_or(usize::MAX)
                    .min(rest.len());
                self.store(rest.get(..take).unwrap_or_default(), o);
                let left = remaining - take as u64;
                self.state = State::Body(Body::Chunked(if left == 0 {
                    ChunkState::DataEnd
                } else {
                    ChunkState::Data(left)
                }));
                take
            }
            ChunkState::DataEnd => {
                // CRLF after chunk data; tolerate a bare LF, and its absence.
                match rest.first() {
                    Some(b'\r') => 1,
                    Some(b'\n') => {
                        self.state = State::Body(Body::Chunked(ChunkState::Size));
                        1
                    }
                    _ => {
                        self.state = State::Body(Body::Chunked(ChunkState::Size));
                        0
                    }
                }
            }
        }
    }

    /// The current message's framing can no longer be followed: report it cut short and look
    /// for the next message.
    fn abandon(&mut self, why: Anomaly, o: Origin, sink: &mut dyn MessageSink) {
        if let Some(mut msg) = self.cur.take() {
            msg.note(why);
            self.finish(msg, o, false, sink);
        }
        if self.state != State::Ignore {
            self.lose_sync();
        }
    }

    /// `len` bytes of the stream are missing from the capture.
    pub fn gap(&mut self, len: u64, o: Origin, sink: &mut dyn MessageSink) {
        match self.state {
            State::Ignore => {}
            State::Detect | State::Resync => self.lose_sync(),
            State::Head => {
                if !self.buf.is_empty() {
                    self.stats.heads_lost += 1;
                }
                self.lose_sync();
            }
            State::Body(Body::Length(remaining)) => {
                let lost = len.min(remaining);
                if let Some(m) = self.cur.as_mut() {
                    m.body.length += lost;
                    m.body.missing += lost;
                    m.note(Anomaly::BodyGap);
                }
                if lost == remaining {
                    if let Some(msg) = self.cur.take() {
                        self.finish(msg, o, true, sink);
                    }
                    if len > lost && self.state != State::Ignore {
                        self.lose_sync();
                    }
                } else {
                    self.state = State::Body(Body::Length(remaining - lost));
                }
            }
            State::Body(Body::UntilClose) => {
                if let Some(m) = self.cur.as_mut() {
                    m.body.length += len;
                    m.body.missing += len;
                    m.note(Anomaly::BodyGap);
                }
            }
            State::Body(Body::Chunked(ChunkState::Data(remaining))) if len < remaining => {
                if let Some(m) = self.cur.as_mut() {
                    m.body.length += len;
                    m.body.missing += len;
                    m.note(Anomaly::BodyGap);
                }
                self.state = State::Body(Body::Chunked(ChunkState::Data(remaining - len)));
            }
            State::Body(Body::Chunked(_)) => self.abandon(Anomaly::BodyGap, o, sink),
        }
    }

    /// The sender closed (FIN): a body delimited by the close ends here; anything else in
    /// progress was cut short.
    pub fn fin(&mut self, o: Origin, sink: &mut dyn MessageSink) {
        self.end(o, true, sink);
    }

    /// The stream ended without a FIN (reset, end of capture, eviction): whatever is in
    /// progress was cut short.
    pub fn abort(&mut self, o: Origin, sink: &mut dyn MessageSink) {
        self.end(o, false, sink);
    }

    fn end(&mut self, o: Origin, fin: bool, sink: &mut dyn MessageSink) {
        if let Some(msg) = self.cur.take() {
            let complete = fin && self.state == State::Body(Body::UntilClose);
            self.finish(msg, o, complete, sink);
        } else if self.state == State::Head && !self.buf.is_empty() {
            self.stats.heads_lost += 1;
        }
        self.buf.clear();
        self.state = State::Ignore;
    }
}

/// Parses a chunk-size line: hex digits, then optional extensions (RFC 9112 §7.1.1).
fn parse_chunk_size(line: &[u8]) -> Option<u64> {
    let digits: &[u8] = {
        let end = line
            .iter()
            .position(|c| !c.is_ascii_hexdigit())
            .unwrap_or(line.len());
        line.get(..end)?
    };
    if digits.is_empty() || digits.len() > 16 {
        return None;
    }
    let after = line.get(digits.len()..)?;
    if !after.is_empty() && !matches!(after.first(), Some(b';' | b' ' | b'\t')) {
        return None;
    }
    u64::from_str_radix(std::str::from_utf8(digits).ok()?, 16).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn start_lines_are_recognised_leniently() {
        for (line, start) in [
            (&b"GET / HTTP/1.1"[..], true),
            (b"GET / HTTP/1.1\r", true),
            (b"GET / http/1.1", true),
            (b"GET / HtTp/1.0\r", true),
            (b"GET /HTTP/1.1", true),
            (b"GET / HTTP/1.", true),
            (b"M-SEARCH * HTTP/1.1", true),
            (b"GET / HTTP", false),
            (b"GET / HTTP1.1", false),
            (b"get / HTTP/1.1", false),
            (b"GET", false),
            (b"GET / \x01HTTP/1.1", false),
            (b"HTTP/1.1 200 OK", true),
            (b"http/1.1 404 x", true),
            (b"HTTP/1.1 200", true),
            (b"HTTP/1.1 20 OK", false),
            (b"HTTP/2 200 OK", false),
            (b"", false),
        ] {
            assert_eq!(is_start_line(line), start, "{}", line.escape_ascii());
        }
    }

    /// Blocks parsed ahead into one store (a batch's), each after the ones before it, come out
    /// of it as parsing each alone gives; a failed parse leaves the store as it was.
    #[test]
    fn header_blocks_share_a_store() {
        let blocks: [&[u8]; 5] = [
            b"GET /a HTTP/1.1\r\nHost: r\r\nContent-Length: 2\r\n\r\nhi",
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n",
            b"GET /partial HTTP/1.1\r\nHost: r\r\n",
            b"HTTP/1.1 204 No Content\r\n\r\n",
            b"PUT /b HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 2\r\nX: y\r\n\r\n",
        ];
        let mut store = Vec::new();
        let mut ahead = Vec::new();
        for b in blocks {
            let before = store.len();
            match parse_ahead_into(b, 100, &mut store) {
                Some(h) => ahead.push((b, h)),
                None => assert_eq!(store.len(), before),
            }
        }
        assert_eq!(ahead.len(), 4);
        // The headers of the four complete blocks: two, one, none, three.
        assert_eq!(store.len(), 6);
        for (b, h) in ahead {
            let alone = parse_ahead(b, 100).unwrap_or_else(|| unreachable!());
            assert_eq!(
                format!("{:?}", h.resolve(&store)),
                format!("{:?}", Some(alone))
            );
        }
    }

    proptest::proptest! {
        /// The search that jumps from `H` to `H` finds what comparing at every position finds.
        #[test]
        fn http_slash_is_found_where_it_is(
            s in proptest::collection::vec(
                proptest::sample::select(b"HhTtPp/1. xH".to_vec()), 0..40)
        ) {
            let everywhere = s.windows(5).any(|w| w.eq_ignore_ascii_case(b"HTTP/"));
            proptest::prop_assert_eq!(contains_http_slash(&s), everywhere);
        }
    }
}
