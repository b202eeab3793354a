//! Pairing requests with responses on one connection, and deciding how each body is delimited.
//!
//! Responses pair with requests in order (HTTP/1.1 pipelining, RFC 9112 §9.3). A response is
//! paired when its header block arrives, so interim responses (100 Continue) attach to a request
//! whose body is still being sent. A response with no request in the capture (the capture began
//! mid-exchange) is kept with `request: None`.

use super::message::{Anomaly, Message};
use super::parser::{BodyKind, Limits, MessageSink, Origin, Parser, ParserStats};
use std::collections::VecDeque;
use std::net::SocketAddr;

/// A request and what answered it.
#[derive(Clone, Debug)]
pub struct Exchange {
    /// Wireshark's `tcp.stream`.
    pub stream: u64,
    pub client: SocketAddr,
    pub server: SocketAddr,
    pub request: Option<Message>,
    /// 1xx responses before the final one.
    pub interim: Vec<Message>,
    pub response: Option<Message>,
}

impl Exchange {
    /// Nanoseconds from the request's first byte to the response's last.
    pub fn duration_ns(&self) -> Option<i64> {
        Some(self.response.as_ref()?.end_ts - self.request.as_ref()?.first_ts)
    }

    /// The frame at which the exchange was last added to.
    pub fn last_frame(&self) -> u64 {
        let r = self.request.as_ref().map_or(0, |m| m.frame);
        let s = self.response.as_ref().map_or(0, |m| m.frame);
        r.max(s)
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Role {
    Request,
    Interim,
    Final,
}

#[derive(Debug)]
struct Slot {
    id: u64,
    /// Direction the request travels (client to server).
    client_dir: usize,
    method: Option<String>,
    request: Option<Message>,
    request_open: bool,
    interim: Vec<Message>,
    response: Option<Message>,
    response_open: bool,
}

impl Slot {
    fn done(&self) -> bool {
        !self.request_open && !self.response_open && self.response.is_some()
    }
}

/// Counters for pairing.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PairingStats {
    /// Exchanges emitted before their response because too many were waiting.
    pub pending_limit_hits: u64,
}

struct Pairing {
    stream: u64,
    /// `endpoints[d]` sends direction `d`.
    endpoints: [SocketAddr; 2],
    queue: VecDeque<Slot>,
    next_id: u64,
    /// What the message in progress on each direction is.
    current: [Option<(u64, Role)>; 2],
    /// A direction that must stop being parsed once its current message ends.
    switch_protocols: Option<usize>,
    max_pending: usize,
    out: Vec<Exchange>,
    stats: PairingStats,
}

/// The message sink of one direction.
struct DirSink<'a> {
    p: &'a mut Pairing,
    dir: usize,
}

/// Values of `Content-Length`, all of them (repeated headers and comma lists).
fn content_length(msg: &mut Message) -> Option<u64> {
    let mut values = Vec::new();
    let mut bad = false;
    for v in msg.headers_named("content-length") {
        for part in v.split(|&c| c == b',') {
            let t = part.trim_ascii();
            match std::str::from_utf8(t)
                .ok()
                .filter(|s| s.bytes().all(|c| c.is_ascii_digit()))
            {
                Some(s) if !s.is_empty() => match s.parse::<u64>() {
                    Ok(n) => values.push(n),
                    Err(_) => bad = true,
                },
                _ => bad = true,
            }
        }
    }
    if bad {
        msg.note(Anomaly::BadContentLength);
    }
    let first = *values.first()?;
    if values.iter().any(|&v| v != first) {
        msg.note(Anomaly::ConflictingContentLength);
    }
    Some(first)
}

/// Whether the last transfer coding is chunked (RFC 9112 §6.3 rule 4).
fn is_chunked(msg: &Message) -> Option<bool> {
    let mut last: Option<Vec<u8>> = None;
    for v in msg.headers_named("transfer-encoding") {
        for part in v.split(|&c| c == b',') {
            let t = part.trim_ascii();
            if !t.is_empty() {
                last = Some(t.to_ascii_lowercase());
            }
        }
    }
    last.map(|l| l == b"chunked")
}

impl MessageSink for DirSink<'_> {
    fn head(&mut self, msg: &mut Message) -> BodyKind {
        let p = &mut *self.p;
        let dir = self.dir;
        if msg.is_request() {
            let id = p.next_id;
            p.next_id += 1;
            p.queue.push_back(Slot {
                id,
                client_dir: dir,
                method: msg.method().map(str::to_string),
                request: None,
                request_open: true,
                interim: Vec::new(),
                response: None,
                response_open: false,
            });
            p.current[dir] = Some((id, Role::Request));
            p.enforce_limit();
            let chunked = is_chunked(msg);
            let length = content_length(msg);
            return match (chunked, length) {
                (Some(true), l) => {
                    if l.is_some() {
                        msg.note(Anomaly::ContentLengthAndChunked);
                    }
                    BodyKind::Chunked
                }
                // A request with a transfer coding other than chunked cannot be framed
                // (RFC 9112 §6.3 rule 4): read to the close.
                (Some(false), _) => BodyKind::UntilClose,
                (None, Some(n)) => BodyKind::Length(n),
                (None, None) => BodyKind::None,
            };
        }
        let status = msg.status().unwrap_or(0);
        let interim = (100..200).contains(&status) && status != 101;
        // Pair with the oldest request of the other direction still without a final response.
        let slot = p
            .queue
            .iter_mut()
            .find(|s| s.client_dir != dir && s.response.is_none() && !s.response_open);
        let (id, method) = match slot {
            Some(s) => {
                if !interim {
                    s.response_open = true;
                }
                (s.id, s.method.clone())
            }
            None => {
                let id = p.next_id;
                p.next_id += 1;
                p.queue.push_back(Slot {
                    id,
                    client_dir: 1 - dir,
                    method: None,
                    request: None,
                    request_open: false,
                    interim: Vec::new(),
                    response: None,
                    response_open: !interim,
                });
                p.enforce_limit();
                (id, None)
            }
        };
        p.current[dir] = Some((id, if interim { Role::Interim } else { Role::Final }));
        let method = method.as_deref();
        if interim || status == 204 || status == 304 || method == Some("HEAD") {
            return BodyKind::None;
        }
        if status == 101 || (method == Some("CONNECT") && (200..300).contains(&status)) {
            p.switch_protocols = Some(1 - dir);
            return BodyKind::Tunnel;
        }
        let chunked = is_chunked(msg);
        let length = content_length(msg);
        match (chunked, length) {
            (Some(true), l) => {
                if l.is_some() {
                    msg.note(Anomaly::ContentLengthAndChunked);
                }
                BodyKind::Chunked
            }
            (Some(false), _) => BodyKind::UntilClose,
            (None, Some(n)) => BodyKind::Length(n),
            (None, None) => BodyKind::UntilClose,
        }
    }

    fn complete(&mut self, msg: Message) {
        let p = &mut *self.p;
        let Some((id, role)) = p.current[self.dir].take() else {
            return;
        };
        if let Some(slot) = p.queue.iter_mut().find(|s| s.id == id) {
            match role {
                Role::Request => {
                    slot.request = Some(msg);
                    slot.request_open = false;
                }
                Role::Interim => slot.interim.push(msg),
                Role::Final => {
                    slot.response = Some(msg);
                    slot.response_open = false;
                }
            }
        }
        p.emit_done();
    }
}

impl Pairing {
    fn emit(&mut self, s: Slot) {
        let client = self.endpoints[s.client_dir];
        let server = self.endpoints[1 - s.client_dir];
        self.out.push(Exchange {
            stream: self.stream,
            client,
            server,
            request: s.request,
            interim: s.interim,
            response: s.response,
        });
    }

    fn emit_done(&mut self) {
        while self.queue.front().is_some_and(Slot::done) {
            if let Some(s) = self.queue.pop_front() {
                self.emit(s);
            }
        }
    }

    fn enforce_limit(&mut self) {
        while self.queue.len() > self.max_pending {
            let open = self
                .queue
                .front()
                .is_some_and(|s| s.request_open || s.response_open);
            if open {
                // Never drop the message being parsed; the bound is restored when it ends.
                break;
            }
            if let Some(s) = self.queue.pop_front() {
                self.stats.pending_limit_hits += 1;
                self.emit(s);
            }
        }
    }
}

/// HTTP state of one TCP connection.
pub struct HttpConn {
    parsers: [Parser; 2],
    pairing: Pairing,
}

/// Counters of one connection, for the run's statistics.
#[derive(Clone, Copy, Debug, Default)]
pub struct ConnStats {
    pub parser: [ParserStats; 2],
    pub pairing: PairingStats,
}

impl HttpConn {
    pub fn new(
        stream: u64,
        endpoints: [SocketAddr; 2],
        limits: Limits,
        max_pending: usize,
    ) -> HttpConn {
        HttpConn {
            parsers: [Parser::new(limits), Parser::new(limits)],
            pairing: Pairing {
                stream,
                endpoints,
                queue: VecDeque::new(),
                next_id: 0,
                current: [None, None],
                switch_protocols: None,
                max_pending,
                out: Vec::new(),
                stats: PairingStats::default(),
            },
        }
    }

    /// Direction `dir` was first seen without its SYN.
    pub fn start_midstream(&mut self, dir: usize) {
        if let Some(p) = self.parsers.get_mut(dir) {
            p.start_midstream();
        }
    }

    fn after(&mut self) {
        if let Some(d) = self.pairing.switch_protocols.take()
            && let Some(p) = self.parsers.get_mut(d)
        {
            p.tunnel_after_current();
        }
    }

    pub fn data(&mut self, dir: usize, bytes: &[u8], o: Origin) {
        if let Some(p) = self.parsers.get_mut(dir) {
            p.feed(
                bytes,
                o,
                &mut DirSink {
                    p: &mut self.pairing,
                    dir,
                },
            );
        }
        self.after();
    }

    pub fn gap(&mut self, dir: usize, len: u64, o: Origin) {
        if let Some(p) = self.parsers.get_mut(dir) {
            p.gap(
                len,
                o,
                &mut DirSink {
                    p: &mut self.pairing,
                    dir,
                },
            );
        }
        self.after();
    }

    pub fn fin(&mut self, dir: usize, o: Origin) {
        if let Some(p) = self.parsers.get_mut(dir) {
            p.fin(
                o,
                &mut DirSink {
                    p: &mut self.pairing,
                    dir,
                },
            );
        }
    }

    /// The connection is over: end both directions and emit every exchange still waiting.
    pub fn close(&mut self, o: Origin) {
        for dir in 0..2 {
            if let Some(p) = self.parsers.get_mut(dir) {
                p.abort(
                    o,
                    &mut DirSink {
                        p: &mut self.pairing,
                        dir,
                    },
                );
            }
        }
        while let Some(s) = self.pairing.queue.pop_front() {
            self.pairing.emit(s);
        }
    }

    /// Neither direction is (or can become) HTTP.
    pub fn is_dead(&self) -> bool {
        self.parsers
            .iter()
            .all(|p| p.is_ignoring() && !p.in_message())
            && self.pairing.queue.is_empty()
    }

    pub fn is_http(&self) -> bool {
        self.parsers.iter().any(|p| p.is_http)
    }

    /// Completed exchanges, in the order they completed.
    pub fn take_exchanges(&mut self) -> std::vec::Drain<'_, Exchange> {
        self.pairing.out.drain(..)
    }

    pub fn stats(&self) -> ConnStats {
        ConnStats {
            parser: [self.parsers[0].stats, self.parsers[1].stats],
            pairing: self.pairing.stats,
        }
    }
}
