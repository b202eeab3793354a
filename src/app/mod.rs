//! Application dispatch: which layer consumes a connection's bytes.
//!
//! The flow table names no protocol; it asks this room ([`Apps`], its [`Consumers`]) for a
//! consumer when a connection's first payload byte arrives, and gives the consumer back when
//! the connection ends. The first bytes of each direction are probed ([`Probe`]: a TLS record
//! header or not); with what the HTTP parser recognised, the connection record names the
//! service (`http`, `tls`, `tls,http`). Today every direction's bytes go on to HTTP/1.x, whose
//! parser gives up on a direction that is not HTTP (a TLS direction among them); a TLS layer
//! beside it will be chosen here by the same probe. Each layer keeps its own counters, folded in as its
//! connections are retired.

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

/// What the first bytes of a direction are.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Probe {
    /// A TLS handshake record (`16 03 0x`, RFC 8446 §5.1).
    Tls,
    /// Anything else; whether it is HTTP/1.x the HTTP parser decides (by its start line).
    Other,
}

impl Probe {
    /// The first bytes of a direction (the record header is all it needs).
    pub fn of(bytes: &[u8]) -> Probe {
        match bytes {
            [0x16, 0x03, minor, ..] if *minor <= 0x04 => Probe::Tls,
            _ => Probe::Other,
        }
    }
}

/// One connection's consumer.
pub enum Conn {
    /// Handed to HTTP; what each direction's first bytes were.
    Http(Box<HttpConn>, [Option<Probe>; 2]),
}

impl Consumers for Apps {
    type Conn = Conn;

    fn open(&mut self, stream: u64, ends: [SocketAddr; 2]) -> Conn {
        Conn::Http(
            Box::new(HttpConn::new(
                stream,
                ends,
                self.limits.http,
                self.limits.max_pending_exchanges,
            )),
            [None, None],
        )
    }

    fn retire(&mut self, conn: Conn, counted: bool) -> bool {
        match conn {
            Conn::Http(h, _) => {
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
            Conn::Http(h, _) => h.start_midstream(dir),
        }
    }

    #[inline]
    fn data(&mut self, dir: usize, bytes: &[u8], o: Origin) {
        match self {
            Conn::Http(h, probes) => {
                if let Some(p @ None) = probes.get_mut(dir) {
                    *p = Some(Probe::of(bytes));
                }
                h.data(dir, bytes, o)
            }
        }
    }

    fn gap(&mut self, dir: usize, len: u64, o: Origin) {
        match self {
            Conn::Http(h, _) => h.gap(dir, len, o),
        }
    }

    fn fin(&mut self, dir: usize, o: Origin) {
        match self {
            Conn::Http(h, _) => h.fin(dir, o),
        }
    }

    fn close(&mut self, o: Origin) {
        match self {
            Conn::Http(h, _) => h.close(o),
        }
    }

    fn cut_short(&self) -> bool {
        match self {
            Conn::Http(h, _) => h.cut_short(),
        }
    }

    fn offer(&mut self, dir: usize, bytes: &[u8], ahead: HeadParsed) {
        match self {
            Conn::Http(h, _) => h.offer(dir, bytes, ahead),
        }
    }

    fn withdraw(&mut self) {
        match self {
            Conn::Http(h, _) => h.withdraw(),
        }
    }

    fn is_done(&self) -> bool {
        match self {
            Conn::Http(h, _) => h.is_dead(),
        }
    }

    fn service(&self) -> Option<&'static str> {
        match self {
            Conn::Http(h, probes) => {
                let tls = probes.contains(&Some(Probe::Tls));
                match (tls, h.is_http()) {
                    (true, true) => Some("tls,http"),
                    (true, false) => Some("tls"),
                    (false, true) => Some("http"),
                    (false, false) => None,
                }
            }
        }
    }

    fn has_events(&self) -> bool {
        match self {
            Conn::Http(h, _) => h.has_exchanges(),
        }
    }

    fn take_events(&mut self, out: &mut dyn FnMut(Exchange)) {
        match self {
            Conn::Http(h, _) => h.take_exchanges().for_each(out),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn first_bytes() {
        assert_eq!(Probe::of(&[0x16, 0x03, 0x01, 0x02, 0x00]), Probe::Tls);
        assert_eq!(Probe::of(&[0x16, 0x03, 0x04]), Probe::Tls);
        assert_eq!(Probe::of(&[0x16, 0x03]), Probe::Other);
        assert_eq!(Probe::of(&[0x16, 0x03, 0x09]), Probe::Other);
        assert_eq!(Probe::of(b"GET /v2/ HTTP/1.1\r\n"), Probe::Other);
    }
}
