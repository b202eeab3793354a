//! Pairing requests with responses on one connection, and deciding how each body is delimited.
//!
//! Responses pair with requests in order (HTTP/1.1 pipelining, RFC 9112 §9.3). A response is
//! paired when its header block arrives, so interim responses (100 Continue) attach to a request
//! whose body is still being sent. A response with no request in the capture (the capture began
//! mid-exchange) is kept with `request: None`.

use super::exchange::Exchange;
use super::message::{Anomaly, Message};
use super::parser::{BodyKind, MessageSink};
use std::collections::VecDeque;
use std::net::SocketAddr;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Role {
    Request,
    Interim,
    Final,
}

/// What response framing needs to know of the request method (RFC 9112 §6.3).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum MethodKind {
    Head,
    Connect,
    Other,
}

impl MethodKind {
    pub(crate) fn of(method: Option<&str>) -> Option<MethodKind> {
        method.map(|m| match m {
            "HEAD" => MethodKind::Head,
            "CONNECT" => MethodKind::Connect,
            _ => MethodKind::Other,
        })
    }
}

#[derive(Debug)]
pub(crate) struct Slot {
    pub(crate) id: u64,
    /// Direction the request travels (client to server).
    pub(crate) client_dir: usize,
    pub(crate) method: Option<MethodKind>,
    pub(crate) request: Option<Box<Message>>,
    pub(crate) request_open: bool,
    pub(crate) interim: Vec<Message>,
    pub(crate) response: Option<Box<Message>>,
    pub(crate) response_open: bool,
    pub(crate) response_gap: bool,
}

impl Slot {
    pub(crate) fn done(&self) -> bool {
        !self.request_open && !self.response_open && self.response.is_some()
    }
}

/// Counters for pairing.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PairingStats {
    /// Exchanges emitted before their response because too many were waiting.
    pub pending_limit_hits: u64,
    /// 1xx responses not kept because their request already had [`MAX_INTERIM`].
    pub interim_dropped: u64,
}

/// 1xx responses kept per request; a server that sends `102 Processing` again and again
/// during a long operation sends more, and those are counted, not kept.
pub const MAX_INTERIM: usize = 16;

pub(crate) struct Pairing {
    pub(crate) stream: u64,
    /// `endpoints[d]` sends direction `d`.
    pub(crate) endpoints: [SocketAddr; 2],
    pub(crate) queue: VecDeque<Slot>,
    pub(crate) next_id: u64,
    /// What the message in progress on each direction is.
    pub(crate) current: [Option<(u64, Role)>; 2],
    /// A direction that must stop being parsed once its current message ends.
    pub(crate) switch_protocols: Option<usize>,
    pub(crate) max_pending: usize,
    pub(crate) out: Vec<Exchange>,
    pub(crate) stats: PairingStats,
    /// Capture time of the latest event.
    pub(crate) now: i64,
    /// An exchange was emitted with a message cut short.
    pub(crate) cut_short: bool,
}

/// The message sink of one direction.
pub(crate) struct DirSink<'a> {
    pub(crate) p: &'a mut Pairing,
    pub(crate) dir: usize,
}

/// How a message's headers frame its body (RFC 9112 §6.3): chunked when the last transfer
/// coding is chunked (with a `Content-Length` too, noted), to the close for any other coding
/// (rule 4), else by `Content-Length` (all values, repeated headers and comma lists, checked
/// to agree), else `unframed`: no body for a request, to the close for a response.
pub(crate) fn body_kind(msg: &mut Message, unframed: BodyKind) -> BodyKind {
    let f = msg.framing();
    if f.bad {
        msg.note(Anomaly::BadContentLength);
    }
    if f.conflicting {
        msg.note(Anomaly::ConflictingContentLength);
    }
    match (f.last_coding_chunked, f.content_length) {
        (Some(true), l) => {
            if l.is_some() {
                msg.note(Anomaly::ContentLengthAndChunked);
            }
            BodyKind::Chunked
        }
        (Some(false), _) => BodyKind::UntilClose,
        (None, Some(n)) => BodyKind::Length(n),
        (None, None) => unframed,
    }
}

impl MessageSink for DirSink<'_> {
    fn head(&mut self, msg: &mut Message) -> BodyKind {
        let p = &mut *self.p;
        let dir = self.dir;
        if msg.is_request() {
            let id = p.open_slot(dir, MethodKind::of(msg.method()), true, false);
            if let Some(c) = p.current.get_mut(dir) {
                *c = Some((id, Role::Request));
            }
            // A request with a transfer coding other than chunked cannot be framed (RFC 9112
            // §6.3 rule 4): it is read to the close, as a response would be.
            return body_kind(msg, BodyKind::None);
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
                (s.id, s.method)
            }
            // A response without a request (the capture began after it was sent).
            None => (p.open_slot(1 - dir, None, false, !interim), None),
        };
        if let Some(c) = p.current.get_mut(dir) {
            *c = Some((id, if interim { Role::Interim } else { Role::Final }));
        }
        if interim || status == 204 || status == 304 || method == Some(MethodKind::Head) {
            return BodyKind::None;
        }
        if status == 101 || (method == Some(MethodKind::Connect) && (200..300).contains(&status)) {
            p.switch_protocols = Some(1 - dir);
            return BodyKind::Tunnel;
        }
        body_kind(msg, BodyKind::UntilClose)
    }

    fn complete(&mut self, msg: Box<Message>) {
        let p = &mut *self.p;
        let Some((id, role)) = p.current.get_mut(self.dir).and_then(Option::take) else {
            return;
        };
        if let Some(slot) = p.queue.iter_mut().find(|s| s.id == id) {
            match role {
                Role::Request => {
                    slot.request = Some(msg);
                    slot.request_open = false;
                }
                Role::Interim if slot.interim.len() >= MAX_INTERIM => {
                    p.stats.interim_dropped += 1;
                }
                Role::Interim => slot.interim.push(*msg),
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
    pub(crate) fn emit(&mut self, s: Slot) {
        let [a, b] = self.endpoints;
        let (client, server) = if s.client_dir == 0 { (a, b) } else { (b, a) };
        self.cut_short |= s.request.as_ref().is_some_and(|m| !m.complete)
            || s.response.as_ref().is_some_and(|m| !m.complete);
        self.out.push(Exchange {
            stream: self.stream,
            index: s.id,
            client,
            server,
            request: s.request,
            interim: s.interim,
            response: s.response,
            response_gap: s.response_gap,
            ended_ts: self.now,
        });
    }

    pub(crate) fn emit_done(&mut self) {
        while self.queue.front().is_some_and(Slot::done) {
            if let Some(s) = self.queue.pop_front() {
                self.emit(s);
            }
        }
    }

    /// Queues a new exchange whose request travels in `client_dir`, with the given message
    /// open, and returns its id. The queue's bound is enforced at once.
    pub(crate) fn open_slot(
        &mut self,
        client_dir: usize,
        method: Option<MethodKind>,
        request_open: bool,
        response_open: bool,
    ) -> u64 {
        let id = self.next_id;
        self.next_id += 1;
        self.queue.push_back(Slot {
            id,
            client_dir,
            method,
            request: None,
            request_open,
            interim: Vec::new(),
            response: None,
            response_open,
            response_gap: false,
        });
        self.enforce_limit();
        id
    }

    /// Hands on the oldest exchanges until at most `max_pending` wait. An exchange with a
    /// message being parsed stays (there is at most one per direction, so the queue never
    /// holds more than `max_pending + 2`); the oldest of the others goes, also from behind
    /// one that stays (a request whose body never ends, answered by one response after
    /// another).
    pub(crate) fn enforce_limit(&mut self) {
        while self.queue.len() > self.max_pending {
            let current = self.current;
            let Some(i) = self.queue.iter().position(|s| {
                !s.request_open
                    && !s.response_open
                    && !current.iter().flatten().any(|&(id, _)| id == s.id)
            }) else {
                break;
            };
            if let Some(s) = self.queue.remove(i) {
                self.stats.pending_limit_hits += 1;
                self.emit(s);
            }
        }
    }
}
