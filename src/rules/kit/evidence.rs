//! Evidence: frames and what they show, built from exchanges.

use super::body::body_of;
use crate::capture::TimestampNs;
use crate::finding::{Evidence, Party, name_server};
use crate::http::{Exchange, Message};
use crate::rules::s3::parse_s3_error;
use crate::text::lossless;
use std::net::SocketAddr;

/// Seconds since the epoch, as a float, of a capture timestamp.
pub fn secs(ts: TimestampNs) -> f64 {
    ts as f64 / 1e9
}

/// `GET /v2/x` (URI shortened to `max` characters).
pub fn request_line(m: &Message, max: usize) -> String {
    let uri = lossless(m.uri().unwrap_or_default());
    format!(
        "{} {}",
        m.method().unwrap_or("?"),
        crate::text::shorten(&uri, max)
    )
}

/// A label is kept to this many characters (a ladder shortens it further to fit).
pub const MAX_LABEL: usize = 200;

/// `GET /v2/x`: a request in a few words.
pub fn request_label(m: &Message) -> String {
    request_line(m, MAX_LABEL)
}

/// A response in a few words: its status, then where a redirect points (`307 → http://s3/…`),
/// S3's error code (`403 SignatureDoesNotMatch`), or the reason phrase.
pub fn response_label(m: &Message) -> String {
    let status = m.status().unwrap_or(0);
    let then = if (300..400).contains(&status)
        && let Some(loc) = m.header("location")
    {
        format!("→ {}", lossless(loc))
    } else if status >= 400
        && let Some(e) = parse_s3_error(&body_of(m)).filter(|e| !e.code.is_empty())
    {
        e.code
    } else {
        lossless(m.reason().unwrap_or_default())
    };
    crate::text::shorten(format!("{status} {then}").trim_end(), MAX_LABEL)
}

/// The parties of an exchange: its client, and its server, called `proxy` when the request
/// names an absolute URI (RFC 9112 §3.2.2: the form a client uses with a forward proxy).
pub fn exchange_parties(ex: &Exchange) -> (Party, Party) {
    let mut server = Party::server(ex.server);
    if ex
        .request
        .as_ref()
        .and_then(|r| r.uri())
        .is_some_and(|u| u.starts_with(b"http://") || u.starts_with(b"https://"))
    {
        server.role = "proxy";
    }
    (Party::client(ex.client), server)
}

/// `evidence` with the server at `addr` named `role` (see [`name_server`]).
pub fn named(mut evidence: Vec<Evidence>, addr: SocketAddr, role: &'static str) -> Vec<Evidence> {
    name_server(&mut evidence, addr, role);
    evidence
}

/// The request and response frames of an exchange as evidence.
pub fn exchange_evidence(ex: &Exchange, what_req: &str, what_resp: &str) -> Vec<Evidence> {
    let (client, server) = exchange_parties(ex);
    let mut v = Vec::new();
    if let Some(r) = &ex.request {
        v.push(Evidence::packet(
            r.frame,
            Some(ex.stream),
            (client, server),
            r.frame_ts(),
            format!(
                "{what_req}: {} ({} → {})",
                request_line(r, 80),
                ex.client,
                ex.server
            ),
            request_label(r),
        ));
    }
    if let Some(r) = &ex.response {
        v.push(Evidence::packet(
            r.frame,
            Some(ex.stream),
            (server, client),
            r.frame_ts(),
            format!(
                "{what_resp}: {} {}{}",
                r.status().unwrap_or(0),
                lossless(r.reason().unwrap_or_default()),
                r.header_str("content-type")
                    .map(|c| format!(" ({c})"))
                    .unwrap_or_default()
            ),
            response_label(r),
        ));
    }
    v
}
