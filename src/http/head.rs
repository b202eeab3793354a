//! Header blocks parsed with httparse: in place, leniently when httparse refuses a start line,
//! and ahead of time on the reading thread ([`parse_ahead_into`]), with the body's framing read
//! in the same pass.

use super::message::{Framing, HeaderPos, Message, StartLine};
use super::start_line::*;
use std::mem::MaybeUninit;

/// Header lines indexed in a stack array; a message with more (up to `max_headers`) is parsed
/// again with a larger one.
pub(crate) const INLINE_HEADERS: usize = 64;

pub(crate) type Parsed = (StartLine, Vec<HeaderPos>);

/// A header block parsed from the start of some bytes: what [`super::parser::Parser`] makes of a whole
/// block at the start of a chunk, done ahead of it.
#[derive(Debug)]
pub struct HeadParsed {
    /// The header slots it was parsed with: a parser with other limits parses for itself.
    pub(crate) slots: usize,
    pub(crate) len: usize,
    pub(crate) start: StartLine,
    pub(crate) headers: Vec<HeaderPos>,
    pub(crate) framing: Framing,
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
/// `max_headers` would on its fast path, for [`super::parser::Parser::offer`]; `None` when `bytes` does not
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
pub(crate) fn parse_in_place_slots(
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
pub(crate) fn fast_path_slots(max_headers: usize) -> usize {
    max_headers.min(INLINE_HEADERS)
}

/// Offsets of `s`, a piece of `head`, within `head` (an empty piece from elsewhere is `(0, 0)`).
pub(crate) fn span_in(head: &[u8], s: &[u8]) -> (usize, usize) {
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
pub(crate) fn parse_lenient(head: &[u8], max_headers: usize) -> Option<Parsed> {
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

pub(crate) fn config() -> httparse::ParserConfig {
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
pub(crate) fn parse_with<'b>(
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
pub(crate) fn parse_prefix<'b>(
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
