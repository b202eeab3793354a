//! Application dispatch: which layer consumes a connection's bytes.
//!
//! The flow table names no protocol; it asks this room ([`Apps`], its [`Consumers`]) for a
//! consumer when a connection's first payload byte arrives, and gives the consumer back when
//! the connection ends. The first bytes of each direction are probed ([`Probe`]: a TLS record
//! header or not); with what the HTTP parser recognised, the connection record names the
//! service (`http`, `tls`, `tls,http`). A direction's bytes go on to HTTP/1.x, whose parser
//! gives up on a direction that is not HTTP; the TLS layer beside it is chosen here by the same probe: a connection whose first bytes are a TLS
//! handshake record goes to `crate::tls` instead. Each layer keeps its own counters, folded
//! in as its connections are retired.

use crate::flow::{Consumers, Origin, StreamConsumer};
use crate::http::parser::HeadParsed;
use crate::http::{Exchange, HttpConn, HttpStats};
use crate::tls::{KeyStore, TlsConn, TlsStats, TlsSummary};
use std::net::SocketAddr;
use std::sync::Arc;

/// Bounds of the application layers.
#[derive(Clone, Copy, Debug)]
pub struct Limits {
    pub http: crate::http::Limits,
    /// Exchanges waiting for a response per connection.
    pub max_pending_exchanges: usize,
    pub tls: crate::tls::Limits,
}

impl Default for Limits {
    fn default() -> Limits {
        Limits {
            http: crate::http::Limits::default(),
            max_pending_exchanges: 1024,
            tls: crate::tls::Limits::default(),
        }
    }
}

/// The application layers of a run: their limits and counters.
#[derive(Debug, Default)]
pub struct Apps {
    pub limits: Limits,
    pub http: HttpStats,
    pub tls: TlsStats,
    /// The run's TLS secrets, if it has any (`--tls-keylog`, a pcapng's).
    pub keys: Option<Arc<KeyStore>>,
}

impl Apps {
    pub fn new(limits: Limits) -> Apps {
        Apps {
            limits,
            http: HttpStats::default(),
            tls: TlsStats::default(),
            keys: None,
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

/// What the application layers report upward.
#[derive(Debug)]
pub enum AppEvent {
    /// An HTTP/1.x exchange.
    Http(Exchange),
    /// A TLS connection ended: what it showed.
    Tls(Box<TlsSummary>),
}

/// One connection's consumer: HTTP/1.x always, and TLS when a direction's first bytes are a
/// TLS handshake record (before HTTP has read anything). HTTP reads a TLS connection as
/// before: it gives up on the TLS side as on any side that is not HTTP, and a side that
/// answers a ClientHello in plain HTTP (a registry without TLS) is an HTTP message, as
/// Wireshark shows it. What TLS decrypts goes to a second HTTP/1.x reader (`inner`), at the
/// frames of the records that carried it.
pub struct Conn {
    http: Box<HttpConn>,
    /// What each direction's first bytes were.
    probes: [Option<Probe>; 2],
    stream: u64,
    ends: [SocketAddr; 2],
    tls_limits: crate::tls::Limits,
    tls: Option<Box<TlsConn>>,
    keys: Option<Arc<KeyStore>>,
    http_limits: crate::http::Limits,
    max_pending: usize,
    /// HTTP/1.x inside TLS, once decrypted bytes arrive.
    inner: Option<Box<HttpConn>>,
}

/// The HTTP reader of decrypted bytes, made when the first arrive.
fn inner_http(
    inner: &mut Option<Box<HttpConn>>,
    stream: u64,
    ends: [SocketAddr; 2],
    limits: crate::http::Limits,
    max_pending: usize,
) -> &mut HttpConn {
    inner.get_or_insert_with(|| Box::new(HttpConn::new(stream, ends, limits, max_pending)))
}

impl Consumers for Apps {
    type Conn = Conn;

    fn open(&mut self, stream: u64, ends: [SocketAddr; 2]) -> Conn {
        Conn {
            http: Box::new(HttpConn::new(
                stream,
                ends,
                self.limits.http,
                self.limits.max_pending_exchanges,
            )),
            probes: [None, None],
            stream,
            ends,
            tls_limits: self.limits.tls,
            tls: None,
            keys: self.keys.clone(),
            http_limits: self.limits.http,
            max_pending: self.limits.max_pending_exchanges,
            inner: None,
        }
    }

    fn retire(&mut self, conn: Conn, counted: bool) -> bool {
        if let Some(t) = &conn.tls {
            self.tls.add(&t.stats);
        }
        let h = &conn.http;
        self.http.add(&h.stats());
        if let Some(i) = &conn.inner {
            self.http.add(&i.stats());
        }
        if (h.is_http() || conn.inner.as_ref().is_some_and(|i| i.is_http())) && !counted {
            self.http.streams += 1;
            return true;
        }
        counted
    }
}

impl Conn {
    /// Calls `f` with the TLS layer and where what it decrypts goes: the HTTP reader of
    /// decrypted bytes.
    fn with_tls(&mut self, f: impl FnOnce(&mut TlsConn, crate::tls::Plain<'_>)) {
        if let Some(t) = &mut self.tls {
            let (inner, stream, ends) = (&mut self.inner, self.stream, self.ends);
            let (limits, max_pending) = (self.http_limits, self.max_pending);
            f(t, &mut |d, b, o| {
                inner_http(inner, stream, ends, limits, max_pending).data(d, b, o)
            });
        }
    }
}

impl StreamConsumer for Conn {
    type Event = AppEvent;
    type Ahead = HeadParsed;

    fn start_midstream(&mut self, dir: usize) {
        self.http.start_midstream(dir);
        if let Some(t) = &mut self.tls {
            t.start_midstream(dir);
        }
    }

    #[inline]
    fn data(&mut self, dir: usize, bytes: &[u8], o: Origin) {
        if let Some(p @ None) = self.probes.get_mut(dir) {
            let probe = Probe::of(bytes);
            *p = Some(probe);
            if probe == Probe::Tls && self.tls.is_none() && !self.http.is_http() {
                self.tls = Some(Box::new(TlsConn::new(
                    self.stream,
                    self.ends,
                    self.tls_limits,
                    self.keys.clone(),
                )));
            }
        }
        if self.tls.is_some() {
            self.with_tls(|t, plain| t.data(dir, bytes, o, plain));
        }
        self.http.data(dir, bytes, o)
    }

    fn gap(&mut self, dir: usize, len: u64, o: Origin) {
        if let Some(t) = &mut self.tls {
            t.gap(dir, len, o);
        }
        if let Some(i) = &mut self.inner {
            i.gap(dir, len, o);
        }
        self.http.gap(dir, len, o)
    }

    fn fin(&mut self, dir: usize, o: Origin) {
        if let Some(t) = &mut self.tls {
            t.fin(dir, o);
        }
        if let Some(i) = &mut self.inner {
            i.fin(dir, o);
        }
        self.http.fin(dir, o)
    }

    fn close(&mut self, o: Origin) {
        self.with_tls(|t, plain| t.close(o, plain));
        if let Some(i) = &mut self.inner {
            i.close(o);
        }
        self.http.close(o)
    }

    fn cut_short(&self) -> bool {
        self.http.cut_short() || self.inner.as_ref().is_some_and(|i| i.cut_short())
    }

    fn offer(&mut self, dir: usize, bytes: &[u8], ahead: HeadParsed) {
        self.http.offer(dir, bytes, ahead)
    }

    fn withdraw(&mut self) {
        self.http.withdraw()
    }

    fn is_done(&self) -> bool {
        match &self.tls {
            // Read to the end: how the connection ends is part of the handshake's outcome.
            Some(t) => t.is_done(),
            None => self.http.is_dead(),
        }
    }

    fn service(&self) -> Option<&'static str> {
        let tls = self.probes.contains(&Some(Probe::Tls));
        let http = self.http.is_http() || self.inner.as_ref().is_some_and(|i| i.is_http());
        match (tls, http) {
            (true, true) => Some("tls,http"),
            (true, false) => Some("tls"),
            (false, true) => Some("http"),
            (false, false) => None,
        }
    }

    fn has_events(&self) -> bool {
        self.http.has_exchanges()
            || self.inner.as_ref().is_some_and(|i| i.has_exchanges())
            || self.tls.as_ref().is_some_and(|t| t.has_events())
    }

    fn take_events(&mut self, out: &mut dyn FnMut(AppEvent)) {
        self.http
            .take_exchanges()
            .for_each(|e| out(AppEvent::Http(e)));
        if let Some(i) = &mut self.inner {
            i.take_exchanges().for_each(|e| out(AppEvent::Http(e)));
        }
        if let Some(s) = self.tls.as_mut().and_then(|t| t.take_summary()) {
            out(AppEvent::Tls(Box::new(s)));
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
