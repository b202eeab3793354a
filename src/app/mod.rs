//! Application dispatch: which layer consumes a connection's bytes.
//!
//! The flow table names no protocol; it asks this room ([`Apps`], its [`Consumers`]) for a
//! consumer when a connection's first payload byte arrives, and gives the consumer back when
//! the connection ends. Today every connection is handed to HTTP/1.x, whose parser recognises
//! its start lines on any port and gives up on a direction that is not HTTP; a TLS layer
//! beside it will be chosen here by the first bytes of each direction. Each layer keeps its
//! own counters, folded in as its connections are retired.

use crate::flow::{Consumers, Origin, StreamConsumer};
use crate::http::parser::HeadParsed;
use crate::http::{Exchange, HttpConn, HttpStats};
use std::net::SocketAddr;

/// Bounds of the application layers.
#[derive(Clone, Copy, Debug)]
pub struct Limits {
    pub http: crate::http::Limits,
    /// Exchanges waiting for a response per connection.
    pub max_pending_exchanges: usize,
}

impl Default for Limits {
    fn default() -> Limits {
        Limits {
            http: crate::http::Limits::default(),
            max_pending_exchanges: 1024,
        }
    }
}

/// The application layers of a run: their limits and counters.
#[derive(Debug, Default)]
pub struct Apps {
    pub limits: Limits,
    pub http: HttpStats,
}

impl Apps {
    pub fn new(limits: Limits) -> Apps {
        Apps {
            limits,
            http: HttpStats::default(),
        }
    }
}

/// One connection's consumer.
pub enum Conn {
    Http(Box<HttpConn>),
}

impl Consumers for Apps {
    type Conn = Conn;

    fn open(&mut self, stream: u64, ends: [SocketAddr; 2]) -> Conn {
        Conn::Http(Box::new(HttpConn::new(
            stream,
            ends,
            self.limits.http,
            self.limits.max_pending_exchanges,
        )))
    }

    fn retire(&mut self, conn: Conn, counted: bool) -> bool {
        match conn {
            Conn::Http(h) => {
                self.http.add(&h.stats());
                if h.is_http() && !counted {
                    self.http.streams += 1;
                    return true;
                }
                counted
            }
        }
    }
}

impl StreamConsumer for Conn {
    type Event = Exchange;
    type Ahead = HeadParsed;

    fn start_midstream(&mut self, dir: usize) {
        match self {
            Conn::Http(h) => h.start_midstream(dir),
        }
    }

    fn data(&mut self, dir: usize, bytes: &[u8], o: Origin) {
        match self {
            Conn::Http(h) => h.data(dir, bytes, o),
        }
    }

    fn gap(&mut self, dir: usize, len: u64, o: Origin) {
        match self {
            Conn::Http(h) => h.gap(dir, len, o),
        }
    }

    fn fin(&mut self, dir: usize, o: Origin) {
        match self {
            Conn::Http(h) => h.fin(dir, o),
        }
    }

    fn close(&mut self, o: Origin) {
        match self {
            Conn::Http(h) => h.close(o),
        }
    }

    fn offer(&mut self, dir: usize, bytes: &[u8], ahead: HeadParsed) {
        match self {
            Conn::Http(h) => h.offer(dir, bytes, ahead),
        }
    }

    fn withdraw(&mut self) {
        match self {
            Conn::Http(h) => h.withdraw(),
        }
    }

    fn is_done(&self) -> bool {
        match self {
            Conn::Http(h) => h.is_dead(),
        }
    }

    fn has_events(&self) -> bool {
        match self {
            Conn::Http(h) => h.has_exchanges(),
        }
    }

    fn take_events(&mut self, out: &mut dyn FnMut(Exchange)) {
        match self {
            Conn::Http(h) => h.take_exchanges().for_each(out),
        }
    }
}
