//! Evidence: frames and what they show, built from exchanges.

use crate::capture::TimestampNs;
use crate::finding::Evidence;
use crate::http::{Exchange, Message};
use crate::text::lossless;

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

/// The request and response frames of an exchange as evidence.
pub fn exchange_evidence(ex: &Exchange, what_req: &str, what_resp: &str) -> Vec<Evidence> {
    let mut v = Vec::new();
    if let Some(r) = &ex.request {
        v.push(Evidence {
            frame: r.frame,
            stream: Some(ex.stream),
            what: format!(
                "{what_req}: {} ({} → {})",
                request_line(r, 80),
                ex.client,
                ex.server
            ),
        });
    }
    if let Some(r) = &ex.response {
        v.push(Evidence {
            frame: r.frame,
            stream: Some(ex.stream),
            what: format!(
                "{what_resp}: {} {}{}",
                r.status().unwrap_or(0),
                lossless(r.reason().unwrap_or_default()),
                r.header_str("content-type")
                    .map(|c| format!(" ({c})"))
                    .unwrap_or_default()
            ),
        });
    }
    v
}
