//! HTTP/1.x start lines and header-block boundaries, recognised by content: what makes a line
//! the start of a request or a response, leniently as servers read them.

/// Whether `line` (without its line ending) starts an HTTP/1.x message.
pub fn is_start_line(line: &[u8]) -> bool {
    is_status_line(line) || is_request_line(line)
}

/// `HTTP/1.x`, with the name in any case (some servers send `http/1.1`).
pub(crate) fn is_version(v: &[u8]) -> bool {
    v.len() == 8
        && v.get(..5).is_some_and(|p| p.eq_ignore_ascii_case(b"HTTP/"))
        && v.get(5..7) == Some(b"1.")
        && v.get(7).is_some_and(u8::is_ascii_digit)
}

pub(crate) fn trim_cr(line: &[u8]) -> &[u8] {
    line.strip_suffix(b"\r").unwrap_or(line)
}

pub(crate) fn is_status_line(line: &[u8]) -> bool {
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

pub(crate) fn is_tchar(c: u8) -> bool {
    c.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&c)
}

/// A request line, leniently: a method token, a space, and an HTTP version somewhere after it.
/// Scanners and broken clients send `GET /HTTP/1.1` or `GET / HTTP/1.`; servers answer them
/// (often 400), so they are requests worth pairing (Wireshark shows them too).
pub(crate) fn is_request_line(line: &[u8]) -> bool {
    let line = trim_cr(line);
    let Some(sp) = memchr::memchr(b' ', line) else {
        return false;
    };
    let (method, rest) = line.split_at(sp);
    is_method(method) && is_printable(rest) && contains_http_slash(rest)
}

/// A request method as the lenient start-line checks take it: a token of at most 32
/// characters with an upper-case letter in it.
pub(crate) fn is_method(method: &[u8]) -> bool {
    !method.is_empty()
        && method.len() <= 32
        && method.iter().all(|&c| is_tchar(c))
        && method.iter().any(u8::is_ascii_uppercase)
}

/// No control characters but tabs. Every byte is looked at (no early exit), which lets the
/// compiler check many at a time: a request line is most often printable to its end.
pub(crate) fn is_printable(s: &[u8]) -> bool {
    !s.iter().fold(false, |bad, &c| {
        bad | ((c < b' ' && c != b'\t') | (c == 0x7f))
    })
}

/// Whether a first line too long to wait for the end of begins as a request line does: a
/// method, a space and a target (`/...`, `*` or an absolute URL), all of it printable.
pub(crate) fn begins_request_line(start: &[u8]) -> bool {
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
pub(crate) fn contains_http_slash(s: &[u8]) -> bool {
    memchr::memchr2_iter(b'H', b'h', s).any(|i| {
        s.get(i..i + 5)
            .is_some_and(|w| w.eq_ignore_ascii_case(b"HTTP/"))
    })
}

/// Splits a request line that httparse refuses into method, target and version; the version
/// is 1.1 unless the line says `HTTP/1.0`. The method and target are pieces of `line`.
pub(crate) fn lenient_request_line(line: &[u8]) -> Option<(&[u8], &[u8], u8)> {
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
pub(crate) fn find_head_end(buf: &[u8], from: usize) -> Option<usize> {
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

pub(crate) fn first_line(b: &[u8]) -> &[u8] {
    memchr::memchr(b'\n', b)
        .and_then(|i| b.get(..=i))
        .unwrap_or(b)
}

pub(crate) fn trim_nl(line: &[u8]) -> &[u8] {
    trim_cr(line.strip_suffix(b"\n").unwrap_or(line))
}
