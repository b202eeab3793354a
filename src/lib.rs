//! capdiag: passive diagnosis of HTTP/1.x traffic in packet captures.
//!
//! The pipeline, each layer depending only on those before it:
//!
//! ```text
//! capture ──► decode ──► flow (TCP streams, reassembly) ──► http (messages, exchanges)
//!   frames     link/IP/TCP     stream numbers, gaps             requests ↔ responses
//!                                   └──────────────► engine ──► output (table, JSON)
//! ```
//!
//! * [`capture`] reads `.pcap`/`.pcapng` and numbers frames exactly as Wireshark does.
//! * [`decode`] finds the TCP segment in a frame (Ethernet/VLAN, Linux cooked v1/v2, raw IP,
//!   loopback), borrowing the frame's bytes.
//! * [`flow`] keeps TCP connections with Wireshark's `tcp.stream` numbers, puts each direction
//!   back in order and tracks connection attempts.
//! * [`http`] parses each direction incrementally and pairs requests with responses; every
//!   message knows its first frame and the frame where Wireshark shows it.
//! * [`engine`] drives the layers frame by frame and keeps statistics of what was skipped.
//! * [`output`] renders results for people (tables) and scripts (JSON).
//! * [`text`] (ground floor, used by every printer) shows bytes from a capture without letting
//!   them drive a terminal, and quotes words for a shell.
#![forbid(unsafe_code)]
// Nothing derived from input may panic: no unwrap, expect or unchecked indexing outside tests.
#![cfg_attr(
    not(test),
    deny(
        clippy::unwrap_used,
        clippy::expect_used,
        clippy::indexing_slicing,
        clippy::panic
    )
)]

pub mod app;
pub mod capture;
pub mod cli;
pub mod commands;
pub mod decode;
pub mod engine;
pub mod finding;
pub mod flow;
pub mod http;
pub mod output;
pub mod rules;
pub mod text;
