//! An exchange: a request and what answered it, as the pairing (`pairing.rs`) of one
//! connection (`conn.rs`) completes it.

use super::message::Message;
use std::net::SocketAddr;

pub use super::conn::{ConnStats, HttpConn, HttpStats};
pub use super::pairing::{MAX_INTERIM, PairingStats};

/// A request and what answered it.
#[derive(Clone, Debug)]
pub struct Exchange {
    /// Wireshark's `tcp.stream`.
    pub stream: u64,
    /// Its place among the exchanges of its connection: 0 for the first one captured.
    pub index: u64,
    pub client: SocketAddr,
    pub server: SocketAddr,
    pub request: Option<Box<Message>>,
    /// 1xx responses before the final one.
    pub interim: Vec<Message>,
    pub response: Option<Box<Message>>,
    /// Bytes from the server were missing from the capture while this exchange waited for its
    /// response: a missing response may just not have been captured.
    pub response_gap: bool,
    /// Capture time at which the exchange was handed on (its response ended, or the
    /// connection did).
    pub ended_ts: i64,
}

impl Exchange {
    /// Nanoseconds from the request's first byte to the response's last.
    pub fn duration_ns(&self) -> Option<i64> {
        Some(
            self.response
                .as_ref()?
                .end_ts
                .saturating_sub(self.request.as_ref()?.first_ts),
        )
    }

    /// The frame at which the exchange was last added to.
    pub fn last_frame(&self) -> u64 {
        let r = self.request.as_ref().map_or(0, |m| m.frame);
        let s = self.response.as_ref().map_or(0, |m| m.frame);
        r.max(s)
    }
}
