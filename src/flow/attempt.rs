//! Connection attempts: what happened to a client's SYNs.

use serde::Serialize;
use std::net::{IpAddr, SocketAddr};

/// Most SYN frames remembered per attempt (the count goes on).
pub const MAX_SYN_FRAMES: usize = 16;

/// How a connection attempt ended, in Zeek's words where they exist.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// SYN-ACK seen, or (when the SYN-ACK is not in the capture) traffic after the SYN shows
    /// the connection was answered: the client acknowledging, or the server sending.
    Answered,
    /// The server (or something on the path) answered the SYN with a reset (Zeek: REJ).
    Refused,
    /// An ICMP destination-unreachable came back.
    Unreachable,
    /// No answer at all by the end of the capture or the flow (Zeek: S0).
    NoAnswer,
}

/// A client's attempt to open a TCP connection.
#[derive(Clone, Debug, Serialize)]
pub struct ConnectionAttempt {
    pub stream: u64,
    pub client: SocketAddr,
    pub server: SocketAddr,
    /// Frames of the SYNs (the first, then retransmissions), at most [`MAX_SYN_FRAMES`].
    pub syn_frames: Vec<u64>,
    /// SYNs sent, retransmissions included (may exceed `syn_frames.len()`).
    pub syn_count: u32,
    pub first_syn_ts: i64,
    pub last_syn_ts: i64,
    pub syn_ack_frame: Option<u64>,
    pub rst_frame: Option<u64>,
    pub icmp_frame: Option<u64>,
    /// What the ICMP destination unreachable said, in words ("port unreachable").
    pub icmp_says: Option<&'static str>,
    pub outcome: Outcome,
    /// Capture time of each frame in `syn_frames` after the first (whose time is
    /// `first_syn_ts`): no allocation for the attempts without a retransmitted SYN.
    #[serde(skip)]
    pub syn_ts: Vec<i64>,
    /// Capture time of the reset, when `rst_frame` is set.
    #[serde(skip)]
    pub rst_ts: i64,
    /// Who sent the ICMP error, and when, when `icmp_frame` is set.
    #[serde(skip)]
    pub icmp_from: Option<(IpAddr, i64)>,
}

impl ConnectionAttempt {
    pub fn new(stream: u64, client: SocketAddr, server: SocketAddr, frame: u64, ts: i64) -> Self {
        ConnectionAttempt {
            stream,
            client,
            server,
            syn_frames: vec![frame],
            syn_count: 1,
            first_syn_ts: ts,
            last_syn_ts: ts,
            syn_ack_frame: None,
            rst_frame: None,
            icmp_frame: None,
            icmp_says: None,
            outcome: Outcome::NoAnswer,
            syn_ts: Vec::new(),
            rst_ts: 0,
            icmp_from: None,
        }
    }

    /// Capture time of the `i`th SYN kept (0: the first).
    pub fn syn_time(&self, i: usize) -> i64 {
        match i.checked_sub(1) {
            None => self.first_syn_ts,
            Some(j) => self.syn_ts.get(j).copied().unwrap_or(self.last_syn_ts),
        }
    }

    pub fn retransmitted_syns(&self) -> u32 {
        self.syn_count.saturating_sub(1)
    }

    pub(crate) fn syn(&mut self, frame: u64, ts: i64) {
        self.syn_count = self.syn_count.saturating_add(1);
        self.last_syn_ts = ts;
        if self.syn_frames.len() < MAX_SYN_FRAMES {
            self.syn_frames.push(frame);
            self.syn_ts.push(ts);
        }
    }
}
