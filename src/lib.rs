//! capdiag: passive diagnosis of HTTP/1.x traffic in packet captures.
//!
//! The pipeline, each layer depending only on those before it (`docs/architecture.md`):
//!
//! ```text
//! capture ──► decode ──► flow ──► app ──► http ──► engine ──► rules ──► output ──► commands
//! ```
//!
//! * [`capture`] reads `.pcap`/`.pcapng` and numbers frames exactly as Wireshark does; live
//!   capture through libpcap.
//! * [`decode`] finds the TCP segment in a frame (Ethernet/VLAN, Linux cooked v1/v2, raw IP,
//!   loopback), borrowing the frame's bytes.
//! * [`flow`] keeps TCP connections with Wireshark's `tcp.stream` numbers, puts each direction
//!   back in order, tracks connection attempts and records connections; it hands bytes to a
//!   [`flow::StreamConsumer`] and names no protocol.
//! * [`app`] chooses the layer that consumes each connection (HTTP today).
//! * [`http`] parses each direction incrementally and pairs requests with responses; every
//!   message knows its first frame and the frame where Wireshark shows it.
//! * [`engine`] drives the layers frame by frame, keeps statistics of what was skipped, and
//!   reports [`engine::Event`]s to a sink.
//! * [`rules`] turn events into [`finding::Finding`]s.
//! * [`output`] renders results for people (tables, finding blocks) and scripts (JSON, NDJSON).
//! * [`commands`] is one file per subcommand.
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
pub mod tls;
