//! The stream-consumer contract: what the flow table hands the layer above it, naming no
//! protocol.
//!
//! A flow puts each direction's bytes back in order and gives them, with their [`Origin`], to
//! one [`StreamConsumer`] per connection. The consumer is made by the table's [`Consumers`]
//! (the application layer's dispatch, `crate::app`) when the first payload byte arrives, and
//! given back to it when the flow ends or the consumer says it wants nothing more, so that
//! its counters are folded into the layer's own. What a consumer finds (an HTTP exchange) goes
//! up as [`super::FlowEvent::App`], in order with the flow's own events.
//!
//! Directions are `0` (from the lower endpoint of the flow key) and `1`, as everywhere in the
//! flow table; a consumer that wants "client" and "server" learns them from what it parses.

use crate::capture::TimestampNs;
use std::net::SocketAddr;

/// Where a stream's bytes came from: the frame that carried them, and the frame being
/// processed when they were delivered (later when buffered out-of-order data is released).
#[derive(Clone, Copy, Debug)]
pub struct Origin {
    pub frame: u64,
    pub arrival: u64,
    pub ts: TimestampNs,
}

/// One connection's consumer of reassembled bytes.
pub trait StreamConsumer {
    /// What it reports upward.
    type Event;
    /// Work done for a segment ahead of time (on the reading thread), offered with it.
    type Ahead;

    /// Direction `dir` was first seen without its SYN: its bytes may start mid-message.
    fn start_midstream(&mut self, dir: usize);
    /// In-order bytes of direction `dir`.
    fn data(&mut self, dir: usize, bytes: &[u8], o: Origin);
    /// `len` bytes of direction `dir` that were never captured.
    fn gap(&mut self, dir: usize, len: u64, o: Origin);
    /// Direction `dir` ended (its FIN, in order).
    fn fin(&mut self, dir: usize, o: Origin);
    /// The connection is over: report what is still pending.
    fn close(&mut self, o: Origin);
    /// Whether a message it was given ended before its framing said it would (a body cut
    /// short); asked when the connection ends, to tell how it ended.
    fn cut_short(&self) -> bool;
    /// Work done ahead for the segment whose payload (`bytes`, direction `dir`) is about to be
    /// delivered; what is not used by then is withdrawn ([`StreamConsumer::withdraw`]).
    fn offer(&mut self, dir: usize, bytes: &[u8], ahead: Self::Ahead);
    fn withdraw(&mut self);
    /// Nothing more of this connection is wanted (it is not, and cannot become, the protocol).
    fn is_done(&self) -> bool;
    /// The application protocols the connection was seen to carry, as a connection record
    /// names them (Zeek's `service`: `http`, `tls`, `tls,http`), if any.
    fn service(&self) -> Option<&'static str>;
    /// Whether events are waiting, and then takes them, in order.
    fn has_events(&self) -> bool;
    fn take_events(&mut self, out: &mut dyn FnMut(Self::Event));
}

/// The application layer as the flow table sees it: makes a consumer for each connection, and
/// takes it back at its end.
pub trait Consumers {
    type Conn: StreamConsumer;
    /// A consumer for stream `stream` between `ends` (indexed by direction).
    fn open(&mut self, stream: u64, ends: [SocketAddr; 2]) -> Self::Conn;
    /// The consumer of a connection is done with: its counters go into the layer's. `counted`
    /// says whether this stream was already counted as carrying the application's protocol (a
    /// flow revived from dormancy is the same stream); the answer is whether it is now.
    fn retire(&mut self, conn: Self::Conn, counted: bool) -> bool;
}
