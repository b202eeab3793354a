//! HTTP/1.x messages as captured: raw header bytes kept with their original case, a bounded
//! body prefix, and the frames that carried them.

use crate::capture::TimestampNs;
use std::io::Read;

/// Where a piece of the start line or a header lies in [`Message::head`]: start and end.
pub(crate) type Span = (u32, u32);

/// Request line or status line; the text fields are spans of the message's header block, so
/// a message costs no allocation beyond its header block and header index.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum StartLine {
    Request {
        method: Span,
        uri: Span,
        /// Minor version: 0 for HTTP/1.0, 1 for HTTP/1.1.
        version: u8,
    },
    Response {
        status: u16,
        reason: Span,
        version: u8,
    },
}

/// What a header block says about how its body is framed (RFC 9112 §6.3), gathered from
/// every `Content-Length` and `Transfer-Encoding` header, repeated headers and comma lists
/// included. Read once, when the block is parsed (on the reading thread when it parses the
/// block ahead, [`crate::http::parser::parse_ahead_into`]).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Framing {
    /// The first `Content-Length` value that is a number.
    pub content_length: Option<u64>,
    /// A `Content-Length` value differs from the first.
    pub conflicting: bool,
    /// A `Content-Length` value is not a number (or too large).
    pub bad: bool,
    /// The last transfer coding named: `Some(true)` when it is `chunked`.
    pub last_coding_chunked: Option<bool>,
}

/// The two headers that frame a body, lower case.
const CONTENT_LENGTH: &[u8] = b"content-length";
const TRANSFER_ENCODING: &[u8] = b"transfer-encoding";

impl Framing {
    /// The framing headers of a header block `head` indexed by `headers`.
    #[inline(never)]
    pub(crate) fn of(head: &[u8], headers: &[HeaderPos]) -> Framing {
        let mut f = Framing::default();
        for h in headers {
            let name = slice(head, h.name);
            if Framing::may_frame(name) {
                f.add(name, slice(head, h.value));
            }
        }
        f
    }

    /// Whether a header of this name can be one [`Framing::add`] reads: by length alone,
    /// which passes over most headers without a call.
    #[inline]
    pub(crate) fn may_frame(name: &[u8]) -> bool {
        name.len() == CONTENT_LENGTH.len() || name.len() == TRANSFER_ENCODING.len()
    }

    /// Takes in one header, `name: value`, of a block, in the block's order (callers pass
    /// over the names [`Framing::may_frame`] rules out; the names are compared here too).
    #[inline]
    pub(crate) fn add(&mut self, name: &[u8], value: &[u8]) {
        if name.eq_ignore_ascii_case(CONTENT_LENGTH) {
            for part in value.split(|&c| c == b',') {
                match (decimal(part.trim_ascii()), self.content_length) {
                    (None, _) => self.bad = true,
                    (Some(n), None) => self.content_length = Some(n),
                    (Some(n), Some(first)) => self.conflicting |= n != first,
                }
            }
        } else if name.eq_ignore_ascii_case(TRANSFER_ENCODING) {
            for part in value.split(|&c| c == b',') {
                let t = part.trim_ascii();
                if !t.is_empty() {
                    self.last_coding_chunked = Some(t.eq_ignore_ascii_case(b"chunked"));
                }
            }
        }
    }
}

/// A `Content-Length` value: one or more decimal digits that fit in 64 bits.
fn decimal(t: &[u8]) -> Option<u64> {
    if t.is_empty() {
        return None;
    }
    t.iter().try_fold(0u64, |n, &c| {
        if c.is_ascii_digit() {
            n.checked_mul(10)?.checked_add(u64::from(c - b'0'))
        } else {
            None
        }
    })
}

/// The bytes of `head` at `span` (none when it lies outside).
fn slice(head: &[u8], (a, b): Span) -> &[u8] {
    head.get(a as usize..b as usize).unwrap_or_default()
}

/// Whether the header at `h` of `head` is named `name` (case-insensitive). The lengths are
/// compared before any byte: most headers are skipped on that alone.
fn is_named(head: &[u8], h: &HeaderPos, name: &[u8]) -> bool {
    (h.name.1.wrapping_sub(h.name.0)) as usize == name.len()
        && slice(head, h.name).eq_ignore_ascii_case(name)
}

/// Every value of the headers of `head` (indexed by `headers`) named `name`, in order.
fn values_named<'s>(
    head: &'s [u8],
    headers: &'s [HeaderPos],
    name: &'s [u8],
) -> impl Iterator<Item = &'s [u8]> + 's {
    headers
        .iter()
        .filter(move |h| is_named(head, h, name))
        .map(move |h| slice(head, h.value))
}

/// Something unusual about a message that the report should be able to show (Zeek calls
/// these "weirds"); never a reason to stop.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Anomaly {
    /// `Content-Length` and `Transfer-Encoding: chunked` together (chunked wins, RFC 9112 §6.3).
    ContentLengthAndChunked,
    /// Several `Content-Length` values that differ; the first is used.
    ConflictingContentLength,
    /// A `Content-Length` that is not a number (or too large).
    BadContentLength,
    /// A chunk-size line that is not hexadecimal.
    BadChunkSize,
    /// Body bytes missing from the capture.
    BodyGap,
    /// The version token was lower case (`http/1.1`).
    LowerCaseVersion,
    /// A start line that does not follow RFC 9112 (`GET /HTTP/1.1`); read leniently.
    MalformedStartLine,
}

/// Where a header's name and value lie in `Message::head`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HeaderPos {
    name: Span,
    value: Span,
}

/// A message body as far as capdiag keeps it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Body {
    /// The first bytes of the body (after de-chunking, before content decoding), up to the
    /// body limit.
    pub prefix: Vec<u8>,
    /// Body bytes seen (after de-chunking), including those not stored.
    pub length: u64,
    /// Body bytes that were not in the capture (gaps).
    pub missing: u64,
}

/// One HTTP/1.x request or response.
#[derive(Clone, Debug)]
pub struct Message {
    start: StartLine,
    /// The raw header block: start line, header lines, the empty line.
    head: Vec<u8>,
    headers: Vec<HeaderPos>,
    /// Frame of the message's first byte.
    pub first_frame: u64,
    /// The frame where Wireshark shows the message: the one that completed it.
    pub frame: u64,
    /// Last frame that carried bytes of this message.
    pub last_frame: u64,
    pub first_ts: TimestampNs,
    pub end_ts: TimestampNs,
    /// Capture time of `last_frame`.
    pub last_ts: TimestampNs,
    pub body: Body,
    /// The message ended where its framing says it ends (false: cut short by a reset, a gap in
    /// chunked framing, or the end of the capture).
    pub complete: bool,
    pub anomalies: Vec<Anomaly>,
    framing: Framing,
}

impl Message {
    /// A message whose header block `head` is indexed by `headers`; `framing` is what
    /// [`Framing::of`] makes of them, read here when not given.
    pub(crate) fn new(
        start: StartLine,
        head: Vec<u8>,
        headers: Vec<HeaderPos>,
        framing: Option<Framing>,
        first_frame: u64,
        ts: TimestampNs,
    ) -> Message {
        let framing = framing.unwrap_or_else(|| Framing::of(&head, &headers));
        Message {
            framing,
            start,
            head,
            headers,
            first_frame,
            frame: first_frame,
            last_frame: first_frame,
            first_ts: ts,
            end_ts: ts,
            last_ts: ts,
            body: Body::default(),
            complete: false,
            anomalies: Vec::new(),
        }
    }

    /// Capture time of `frame`, the frame where Wireshark shows the message.
    pub fn frame_ts(&self) -> TimestampNs {
        if self.complete {
            self.end_ts
        } else {
            self.last_ts
        }
    }

    /// The header block's buffer, taken out (an empty one left in its place).
    pub(crate) fn take_head(&mut self) -> Vec<u8> {
        std::mem::take(&mut self.head)
    }

    /// The header index, taken out (an empty one left in its place).
    pub(crate) fn take_headers(&mut self) -> Vec<HeaderPos> {
        std::mem::take(&mut self.headers)
    }

    pub(crate) fn head_capacity(&self) -> usize {
        self.head.capacity()
    }

    /// Frees all but the header block's buffer, which is left empty: a spent message kept
    /// for reuse ([`super::spare`]) holds nothing else.
    pub(crate) fn release(&mut self) {
        self.head.clear();
        self.body = Body::default();
        self.anomalies = Vec::new();
    }

    pub(crate) fn span((a, b): (usize, usize)) -> Span {
        let c = |x: usize| u32::try_from(x).unwrap_or(u32::MAX);
        (c(a), c(b))
    }

    pub(crate) fn header_pos(name: (usize, usize), value: (usize, usize)) -> HeaderPos {
        HeaderPos {
            name: Message::span(name),
            value: Message::span(value),
        }
    }

    pub(crate) fn note(&mut self, a: Anomaly) {
        if !self.anomalies.contains(&a) {
            self.anomalies.push(a);
        }
    }

    pub fn is_request(&self) -> bool {
        matches!(self.start, StartLine::Request { .. })
    }

    /// The request method (a token, so ASCII; `None` for a response).
    pub fn method(&self) -> Option<&str> {
        match self.start {
            // The common methods without a UTF-8 check (rules ask on every exchange).
            StartLine::Request { method, .. } => match self.slice(method) {
                b"GET" => Some("GET"),
                b"HEAD" => Some("HEAD"),
                b"POST" => Some("POST"),
                b"PUT" => Some("PUT"),
                b"PATCH" => Some("PATCH"),
                b"DELETE" => Some("DELETE"),
                other => std::str::from_utf8(other).ok(),
            },
            StartLine::Response { .. } => None,
        }
    }

    pub fn uri(&self) -> Option<&[u8]> {
        match self.start {
            StartLine::Request { uri, .. } => Some(self.slice(uri)),
            StartLine::Response { .. } => None,
        }
    }

    /// The reason phrase of a response as sent (`None` for a request).
    pub fn reason(&self) -> Option<&[u8]> {
        match self.start {
            StartLine::Response { reason, .. } => Some(self.slice(reason)),
            StartLine::Request { .. } => None,
        }
    }

    pub fn status(&self) -> Option<u16> {
        match &self.start {
            StartLine::Response { status, .. } => Some(*status),
            StartLine::Request { .. } => None,
        }
    }

    pub fn version(&self) -> u8 {
        match &self.start {
            StartLine::Request { version, .. } | StartLine::Response { version, .. } => *version,
        }
    }

    /// The raw header block as captured.
    pub fn raw_head(&self) -> &[u8] {
        &self.head
    }

    fn slice(&self, span: Span) -> &[u8] {
        slice(&self.head, span)
    }

    /// All headers in order, names in their original case.
    pub fn headers(&self) -> impl Iterator<Item = (&[u8], &[u8])> + '_ {
        self.headers
            .iter()
            .map(|h| (self.slice(h.name), self.slice(h.value)))
    }

    /// Whether the header at `h` is named `name` (case-insensitive). The lengths are compared
    /// before any byte: most headers are skipped on that alone.
    fn is_named(&self, h: &HeaderPos, name: &[u8]) -> bool {
        is_named(&self.head, h, name)
    }

    /// How the header block frames the body.
    pub(crate) fn framing(&self) -> Framing {
        self.framing
    }

    /// The first value of a header, by case-insensitive name.
    pub fn header(&self, name: &str) -> Option<&[u8]> {
        self.headers
            .iter()
            .find(|h| self.is_named(h, name.as_bytes()))
            .map(|h| self.slice(h.value))
    }

    /// Every value of a header, by case-insensitive name.
    pub fn headers_named<'s>(&'s self, name: &'s str) -> impl Iterator<Item = &'s [u8]> + 's {
        values_named(&self.head, &self.headers, name.as_bytes())
    }

    /// A header value as text (lossless where it is UTF-8, `\xNN` escapes elsewhere).
    pub fn header_str(&self, name: &str) -> Option<String> {
        self.header(name).map(crate::text::lossless)
    }

    /// The body prefix decoded from its `Content-Encoding` (gzip, x-gzip, deflate), up to
    /// `limit` bytes; the stored prefix itself when there is no encoding or it is unknown.
    /// A prefix of a compressed body decodes as far as it goes.
    pub fn decoded_body(&self, limit: usize) -> Vec<u8> {
        let enc = self
            .header("content-encoding")
            .map(|v| String::from_utf8_lossy(v).trim().to_ascii_lowercase());
        let raw = &self.body.prefix;
        let mut out = Vec::new();
        let read_to = |r: &mut dyn Read, out: &mut Vec<u8>| {
            let mut buf = [0u8; 8192];
            while out.len() < limit {
                match r.read(&mut buf) {
                    Ok(0) | Err(_) => break,
                    Ok(n) => {
                        let take = n.min(limit - out.len());
                        out.extend_from_slice(buf.get(..take).unwrap_or_default());
                    }
                }
            }
        };
        match enc.as_deref() {
            Some("gzip" | "x-gzip") => {
                read_to(&mut flate2::read::GzDecoder::new(&raw[..]), &mut out);
            }
            Some("deflate") => {
                // RFC 9110 says zlib-wrapped; some servers send raw deflate.
                read_to(&mut flate2::read::ZlibDecoder::new(&raw[..]), &mut out);
                if out.is_empty() {
                    read_to(&mut flate2::read::DeflateDecoder::new(&raw[..]), &mut out);
                }
            }
            _ => out.extend_from_slice(raw.get(..raw.len().min(limit)).unwrap_or_default()),
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn content_length_values_read_as_u64_parses_digits() {
        for t in [
            "",
            "0",
            "0012",
            "153",
            "18446744073709551615",
            "18446744073709551616",
            "1a",
            "+1",
            "-1",
            " 1",
            "1.0",
            "\u{661}",
        ] {
            let by_std = (!t.is_empty() && t.bytes().all(|c| c.is_ascii_digit()))
                .then(|| t.parse::<u64>().ok())
                .flatten();
            assert_eq!(decimal(t.as_bytes()), by_std, "{t:?}");
        }
        assert_eq!(decimal(b"18446744073709551615"), Some(u64::MAX));
        assert_eq!(decimal(b"18446744073709551616"), None);
    }
}
