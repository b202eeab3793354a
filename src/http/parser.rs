//! Incremental HTTP/1.x parsing of one direction of a connection.
//!
//! Bytes arrive in whatever pieces TCP delivered them; the parser keeps only the header block
//! being assembled and a bounded body prefix. It finds HTTP by content (a request line or a
//! status line), not by port. After a gap, or when the capture began in the middle of a
//! message, it resynchronises at the next line that starts a message. Decisions that need the
//! other direction (how a response body is delimited depends on the request method) are asked of
//! the [`MessageSink`].

use std::mem::MaybeUninit;

use super::message::{Anomaly, Framing, HeaderPos, Message, StartLine};

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

/// Header lines indexed in a stack array; a message with more (up to `max_headers`) is parsed
/// again with a larger one.
const INLINE_HEADERS: usize = 64;

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

/// Whether `line` (without its line ending) starts an HTTP/1.x message.
pub fn is_start_line(line: &[u8]) -> bool {
    is_status_line(line) || is_request_line(line)
}

/// `HTTP/1.x`, with the name in any case (some servers send `http/1.1`).
fn is_version(v: &[u8]) -> bool {
    v.len() == 8
        && v.get(..5).is_some_and(|p| p.eq_ignore_ascii_case(b"HTTP/"))
        && v.get(5..7) == Some(b"1.")
        && v.get(7).is_some_and(u8::is_ascii_digit)
}

fn trim_cr(line: &[u8]) -> &[u8] {
    line.strip_suffix(b"\r").unwrap_or(line)
}

fn is_status_line(line: &[u8]) -> bool {
    let line = trim_cr(line);
    let (Some(v), Some(rest)) = (line.get(..8), line.get(8..)) else {
        return false;
    };
    if !is_version(v) {
        return false;
    }
    let rest = rest.strip_prefix(b" ").unwrap_or(b"");
    matches!(rest, [a, b, c, ..] if a.is_ascii_digit() && b.is_ascii_digit() && c.is_ascii_digit())
        && rest.get(3).is_none_or(|&x| x == b' ' || x == b'\t')
}

fn is_tchar(c: u8) -> bool {
    c.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&c)
}

/// A request line, leniently: a method token, a space, and an HTTP version somewhere after it.
/// Scanners and broken clients send `GET /HTTP/1.1` or `GET / HTTP/1.`; servers answer them
/// (often 400), so they are requests worth pairing (Wireshark shows them too).
fn is_request_line(line: &[u8]) -> bool {
    let line = trim_cr(line);
    let Some(sp) = memchr::memchr(b' ', line) else {
        return false;
    };
    let (method, rest) = line.split_at(sp);
    is_method(method) && is_printable(rest) && contains_http_slash(rest)
}

/// A request method as the lenient start-line checks take it: a token of at most 32
/// characters with an upper-case letter in it.
fn is_method(method: &[u8]) -> bool {
    !method.is_empty()
        && method.len() <= 32
        && method.iter().all(|&c| is_tchar(c))
        && method.iter().any(u8::is_ascii_uppercase)
}

/// No control characters but tabs. Every byte is looked at (no early exit), which lets the
/// compiler check many at a time: a request line is most often printable to its end.
fn is_printable(s: &[u8]) -> bool {
    !s.iter().fold(false, |bad, &c| {
        bad | ((c < b' ' && c != b'\t') | (c == 0x7f))
    })
}

/// Whether a first line too long to wait for the end of begins as a request line does: a
/// method, a space and a target (`/...`, `*` or an absolute URL), all of it printable.
fn begins_request_line(start: &[u8]) -> bool {
    let Some(sp) = memchr::memchr(b' ', start) else {
        return false;
    };
    let (method, rest) = start.split_at(sp);
    is_method(method)
        && rest
            .get(1)
            .is_some_and(|&c| c == b'/' || c == b'*' || c.is_ascii_alphabetic())
        && is_printable(start)
}

/// Whether `HTTP/`, in any case, occurs in `s`: only where an `H` or `h` is is it compared.
fn contains_http_slash(s: &[u8]) -> bool {
    memchr::memchr2_iter(b'H', b'h', s).any(|i| {
        s.get(i..i + 5)
            .is_some_and(|w| w.eq_ignore_ascii_case(b"HTTP/"))
    })
}

/// Splits a request line that httparse refuses into method, target and version; the version
/// is 1.1 unless the line says `HTTP/1.0`. The method and target are pieces of `line`.
fn lenient_request_line(line: &[u8]) -> Option<(&[u8], &[u8], u8)> {
    let line = trim_cr(line);
    let mut parts = line.split(|&c| c == b' ').filter(|p| !p.is_empty());
    let method = parts.next()?;
    let mut uri: &[u8] = &[];
    let mut version = 1;
    for p in parts {
        let upper = p.to_ascii_uppercase();
        if let Some(at) = memchr::memmem::find(&upper, b"HTTP/") {
            if uri.is_empty() {
                uri = p.get(..at).unwrap_or_default();
            }
            if upper.get(at..) == Some(b"HTTP/1.0".as_slice()) {
                version = 0;
            }
            break;
        }
        if uri.is_empty() {
            uri = p;
        }
    }
    Some((method, uri, version))
}

/// Finds the end of a header block in `buf` (searching from `from`): the index just past the
/// empty line. Accepts bare LF line endings.
fn find_head_end(buf: &[u8], from: usize) -> Option<usize> {
    let mut i = from;
    while let Some(rel) = buf.get(i..).and_then(|s| memchr::memchr(b'\n', s)) {
        let nl = i + rel;
        match (buf.get(nl + 1), buf.get(nl + 2)) {
            (Some(b'\n'), _) => return Some(nl + 2),
            (Some(b'\r'), Some(b'\n')) => return Some(nl + 3),
            _ => i = nl + 1,
        }
    }
    None
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
        if self.buf.is_empty() {
            if let Some(end) = find_head_end(rest, 0) {
                if end <= self.limits.max_header_bytes {
                    self.append(rest.get(..end).unwrap_or_default(), o);
                    // Not a message: resynchronise from the next line, which may start one.
                    return match self.parse_buffered(o, sink) {
                        Some(()) => end,
                        None => first_line(rest).len(),
                    };
                }
            }
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

fn first_line(b: &[u8]) -> &[u8] {
    memchr::memchr(b'\n', b)
        .and_then(|i| b.get(..=i))
        .unwrap_or(b)
}

fn trim_nl(line: &[u8]) -> &[u8] {
    trim_cr(line.strip_suffix(b"\n").unwrap_or(line))
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

type Parsed = (StartLine, Vec<HeaderPos>);

/// A header block parsed from the start of some bytes: what [`Parser`] makes of a whole
/// block at the start of a chunk, done ahead of it.
#[derive(Debug)]
pub struct HeadParsed {
    /// The header slots it was parsed with: a parser with other limits parses for itself.
    slots: usize,
    len: usize,
    start: StartLine,
    headers: Vec<HeaderPos>,
    framing: Framing,
}

/// A [`HeadParsed`] whose header index lies in a store shared with others (a batch's, so
/// that parsing ahead allocates nothing): [`HeadAhead::resolve`] takes it out.
#[derive(Clone, Copy, Debug)]
pub struct HeadAhead {
    slots: usize,
    len: usize,
    start: StartLine,
    /// Where the header index lies in the store.
    headers: (usize, usize),
    framing: Framing,
}

impl HeadAhead {
    /// The parse, its header index copied out of `store` (the store [`parse_ahead_into`]
    /// added it to); `None` when it is not there.
    pub fn resolve(&self, store: &[HeaderPos]) -> Option<HeadParsed> {
        Some(HeadParsed {
            slots: self.slots,
            len: self.len,
            start: self.start,
            headers: {
                let mut v = super::spare::index();
                v.extend_from_slice(store.get(self.headers.0..self.headers.1)?);
                v
            },
            framing: self.framing,
        })
    }
}

impl HeadParsed {
    #[cfg(test)]
    pub(crate) fn into_parts(self) -> (StartLine, usize, Vec<HeaderPos>, Framing) {
        (self.start, self.len, self.headers, self.framing)
    }
}

/// Parses the header block at the start of `bytes` as a parser with header limit
/// `max_headers` would on its fast path, for [`Parser::offer`]; `None` when `bytes` does not
/// begin with a whole block that path takes (the parser then does its own work).
pub fn parse_ahead(bytes: &[u8], max_headers: usize) -> Option<HeadParsed> {
    let mut store = Vec::new();
    parse_ahead_into(bytes, max_headers, &mut store)?.resolve(&store)
}

/// [`parse_ahead`], with the header index added to `store` (left as it was when there is no
/// parse) and the body's framing read while the block is at hand.
pub fn parse_ahead_into(
    bytes: &[u8],
    max_headers: usize,
    store: &mut Vec<HeaderPos>,
) -> Option<HeadAhead> {
    // Every start line begins with an upper-case letter (a method or `HTTP/`); the lenient
    // paths that accept others are the parser's own.
    if !bytes.first().is_some_and(u8::is_ascii_uppercase) {
        return None;
    }
    let from = store.len();
    let (len, start, framing) = parse_in_place_slots(bytes, max_headers, store).ok()??;
    Some(HeadAhead {
        slots: fast_path_slots(max_headers),
        len,
        start,
        headers: (from, store.len()),
        framing,
    })
}

/// [`parse_prefix`] with the header slots of the fast path: `max_headers`, at most
/// [`INLINE_HEADERS`].
fn parse_in_place_slots(
    bytes: &[u8],
    max_headers: usize,
    out: &mut Vec<HeaderPos>,
) -> Result<Option<(usize, StartLine, Framing)>, httparse::Error> {
    let mut small = [const { MaybeUninit::uninit() }; INLINE_HEADERS];
    let first = small
        .get_mut(..fast_path_slots(max_headers))
        .unwrap_or_default();
    parse_prefix(bytes, first, out)
}

/// Header slots of the fast path for a header limit of `max_headers`.
fn fast_path_slots(max_headers: usize) -> usize {
    max_headers.min(INLINE_HEADERS)
}

/// Offsets of `s`, a piece of `head`, within `head` (an empty piece from elsewhere is `(0, 0)`).
fn span_in(head: &[u8], s: &[u8]) -> (usize, usize) {
    let base = head.as_ptr() as usize;
    let a = (s.as_ptr() as usize).wrapping_sub(base);
    if s.is_empty() || a.saturating_add(s.len()) > head.len() {
        (0, 0)
    } else {
        (a, a + s.len())
    }
}

/// A request whose start line httparse refuses: the line split by hand, the header lines by
/// httparse.
fn parse_lenient(head: &[u8], max_headers: usize) -> Option<Parsed> {
    if head.get(..5).is_some_and(|v| v == b"HTTP/") {
        return None;
    }
    let nl = memchr::memchr(b'\n', head)?;
    let (method, uri, version) = lenient_request_line(head.get(..nl)?)?;
    let start = StartLine::Request {
        method: Message::span(span_in(head, method)),
        uri: Message::span(span_in(head, uri)),
        version,
    };
    let rest = head.get(nl + 1..)?;
    // Header lines split by hand: `name: value`, lines without a colon skipped.
    let mut pos = Vec::new();
    for line in rest.split(|&c| c == b'\n') {
        let line = trim_cr(line);
        let Some(colon) = memchr::memchr(b':', line) else {
            continue;
        };
        let (name, value) = (line.get(..colon)?, line.get(colon + 1..)?);
        let name = name.trim_ascii();
        if name.is_empty() || !name.iter().all(|&c| is_tchar(c)) {
            continue;
        }
        if pos.len() >= max_headers {
            break;
        }
        pos.push(Message::header_pos(
            span_in(head, name),
            span_in(head, value.trim_ascii()),
        ));
    }
    Some((start, pos))
}

fn config() -> httparse::ParserConfig {
    let mut c = httparse::ParserConfig::default();
    c.allow_spaces_after_header_name_in_responses(true)
        .allow_multiple_spaces_in_request_line_delimiters(true)
        .allow_multiple_spaces_in_response_status_delimiters(true)
        .allow_obsolete_multiline_headers_in_responses(true)
        .ignore_invalid_headers_in_responses(true)
        .ignore_invalid_headers_in_requests(true);
    c
}

/// Parses a complete header block, with what it says of its body's framing; a block that is
/// not complete is an error.
fn parse_with<'b>(
    head: &'b [u8],
    headers: &mut [MaybeUninit<httparse::Header<'b>>],
) -> Result<(Parsed, Framing), httparse::Error> {
    let mut positions = Vec::new();
    match parse_prefix(head, headers, &mut positions)? {
        Some((_, start, framing)) => Ok(((start, positions), framing)),
        None => Err(httparse::Error::Token),
    }
}

/// Parses the header block at the start of `buf`: its length and the message's start line,
/// with its header positions added to `out`; `None` (and `out` as it was) when `buf` ends
/// before the block does. The header slots need no initialising (httparse writes those it
/// uses): most blocks use a few of dozens.
fn parse_prefix<'b>(
    buf: &'b [u8],
    headers: &mut [MaybeUninit<httparse::Header<'b>>],
    out: &mut Vec<HeaderPos>,
) -> Result<Option<(usize, StartLine, Framing)>, httparse::Error> {
    let span = |s: &[u8]| Message::span(span_in(buf, s));
    let (len, start, hs) = if buf.get(..5).is_some_and(|v| v == b"HTTP/") {
        let mut res = httparse::Response::new(&mut []);
        let httparse::Status::Complete(len) =
            config().parse_response_with_uninit_headers(&mut res, buf, headers)?
        else {
            return Ok(None);
        };
        let start = StartLine::Response {
            status: res.code.unwrap_or(0),
            reason: span(res.reason.unwrap_or("").as_bytes()),
            version: res.version.unwrap_or(1),
        };
        (len, start, &*res.headers)
    } else {
        let mut req = httparse::Request::new(&mut []);
        let httparse::Status::Complete(len) =
            config().parse_request_with_uninit_headers(&mut req, buf, headers)?
        else {
            return Ok(None);
        };
        let start = StartLine::Request {
            method: span(req.method.unwrap_or("").as_bytes()),
            uri: span(req.path.unwrap_or("").as_bytes()),
            version: req.version.unwrap_or(1),
        };
        (len, start, &*req.headers)
    };
    // One pass over the headers both indexes them and reads the body's framing.
    let mut framing = Framing::default();
    out.reserve(hs.len());
    for h in hs {
        let name = h.name.as_bytes();
        if Framing::may_frame(name) {
            framing.add(name, h.value);
        }
        out.push(Message::header_pos(
            span_in(buf, name),
            span_in(buf, h.value),
        ));
    }
    Ok(Some((len, start, framing)))
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
