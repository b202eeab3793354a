//! Bodies: the stored prefix decoded, and what kind of document it is.

use crate::http::Message;

/// The decoded body prefix of a message (as far as it was stored).
pub fn body_of(m: &Message) -> Vec<u8> {
    m.decoded_body(64 * 1024)
}

/// The text of an HTML document's `<title>`, if any.
pub fn html_title(body: &[u8]) -> Option<String> {
    let lower = body.to_ascii_lowercase();
    let start = memchr::memmem::find(&lower, b"<title>")? + 7;
    let end = start + memchr::memmem::find(lower.get(start..)?, b"</title>")?;
    let t = crate::text::lossless(body.get(start..end)?)
        .trim()
        .to_string();
    (!t.is_empty()).then_some(t)
}

/// Whether a body looks like HTML.
pub fn looks_like_html(msg: &Message, body: &[u8]) -> bool {
    let ct = msg
        .header_str("content-type")
        .unwrap_or_default()
        .to_ascii_lowercase();
    if ct.contains("html") {
        return true;
    }
    let head = body
        .get(..body.len().min(512))
        .unwrap_or_default()
        .to_ascii_lowercase();
    let t = head.trim_ascii_start();
    t.starts_with(b"<!doctype html") || t.starts_with(b"<html")
}

/// What a TLS server answers a plaintext HTTP request sent to its port, if `m` is that answer:
/// nginx's 400 page ("The plain HTTP request was sent to HTTPS port", its 497 sent as 400) or
/// Go's plain 400 ("Client sent an HTTP request to an HTTPS server.").
pub fn tls_port_answer(m: &Message) -> Option<&'static str> {
    if m.status() != Some(400) {
        return None;
    }
    let body = &m.body.prefix;
    if memchr::memmem::find(body, b"The plain HTTP request was sent to HTTPS port").is_some() {
        Some("nginx")
    } else if memchr::memmem::find(body, b"Client sent an HTTP request to an HTTPS server")
        .is_some()
    {
        Some("a Go server (such as the registry itself)")
    } else {
        None
    }
}
