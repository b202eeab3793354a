//! The pipeline: frames in, HTTP exchanges and connection attempts out, with the statistics
//! that say what was analysed and what was skipped.
//!
//! The engine is fed one frame at a time (from a file or, later, a live interface) and pushes
//! results to a [`Sink`] as soon as they are complete, so memory depends on the flows that are
//! open, not on the size of the capture.

use crate::app::{AppEvent, Apps};
use crate::capture::prefetch::BatchStore;
use crate::capture::{Frame, LinkType, TimestampNs};
use crate::decode::{self, Decoded, Detached, Malformed};
use crate::flow::{ConnRecord, ConnectionAttempt, Ending, FlowEvent, FlowStats, FlowTable, Stall};
use crate::http::HttpStats;
use crate::http::message::HeaderPos;
use crate::http::parser::{HeadAhead, HeadParsed, parse_ahead_into};
use crate::http::{Exchange, spare};
use crate::tls::{TlsStats, TlsSummary};
use serde::Serialize;
use std::collections::BTreeMap;

/// What the engine reports, in the order it happens. A new kind of result is one more
/// variant here (and a hook in [`crate::rules::Rule`] for the rules that want it).
#[derive(Clone, Copy, Debug)]
pub enum Event<'a> {
    /// A request/response exchange is complete (or the connection ended).
    Exchange(&'a Exchange),
    /// A connection attempt was answered, refused, or ended unanswered.
    Attempt(&'a ConnectionAttempt),
    /// A connection attempt is still unanswered and its SYN was just retransmitted.
    AttemptProgress(&'a ConnectionAttempt),
    /// A connection ended: how it went ([`ConnRecord`]).
    ConnEnd(&'a ConnRecord),
    /// A connection ended with a message cut short: how each side ended it.
    CutShort(&'a Ending),
    /// A TLS connection ended: what its handshake showed, and how it went.
    Tls(&'a TlsSummary),
    /// One direction's data stopped getting through, and the stall is over.
    Stall(&'a Stall),
    /// Capture time moved on (after every frame): time to act on deadlines.
    Tick(TimestampNs),
    /// End of the input: nothing more will come.
    Finish,
}

/// Receives the engine's results.
pub trait Sink {
    fn event(&mut self, ev: Event<'_>);
    /// Whether more input is wanted: false once the sink's output has gone (a closed pipe),
    /// so that reading stops instead of going on for nobody.
    fn wants_more(&self) -> bool {
        true
    }
    /// The earliest capture time at which a [`Event::Tick`] has something to do (`None`:
    /// none will); ticks before it are not sent. Asked after every event. Every tick by
    /// default.
    fn wakes_at(&self) -> Option<TimestampNs> {
        Some(TimestampNs::MIN)
    }
}

/// How often (capture time) idle flows are looked for.
const SWEEP_INTERVAL_NS: TimestampNs = 10 * 1_000_000_000;

/// One kind of frame that was not analysed, how many, and the first one.
#[derive(Clone, Debug, Serialize, PartialEq, Eq)]
pub struct Skipped {
    pub reason: String,
    pub count: u64,
    pub first_frame: u64,
}

/// How many frames of a kind, and the first of them.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct Tally {
    pub(crate) count: u64,
    pub(crate) first_frame: u64,
}

impl Tally {
    pub(crate) fn add(&mut self, frame: u64) {
        if self.count == 0 {
            self.first_frame = frame;
        }
        self.count += 1;
    }
}

/// What one run saw.
#[derive(Clone, Debug, Default)]
pub struct Stats {
    pub frames: u64,
    pub captured_bytes: u64,
    pub tcp_segments: u64,
    /// Frames cut short by the snap length.
    pub snaplen_truncated: u64,
    pub exchanges: u64,
    pub http_messages: u64,
    pub connection_attempts: u64,
    /// Capture times of the first frame and of the latest.
    pub first_ts: Option<TimestampNs>,
    pub last_ts: Option<TimestampNs>,
    pub flow: FlowStats,
    pub http: HttpStats,
    pub tls: TlsStats,
    /// The run's TLS secrets, as far as read when this capture ended.
    pub tls_keys: crate::tls::keys::KeyStoreStats,
    not_ip: BTreeMap<u16, Tally>,
    other_ip: Tally,
    fragments: Tally,
    unsupported_link: BTreeMap<LinkType, Tally>,
    malformed: BTreeMap<Malformed, Tally>,
}

fn ethertype_name(et: u16) -> &'static str {
    match et {
        0x0806 => "ARP",
        0x8035 => "RARP",
        0x88cc => "LLDP",
        0x8863 => "PPPoE discovery",
        0x8847 | 0x8848 => "MPLS",
        0x88e5 => "MACsec",
        0x8100 | 0x88a8 | 0x9100 => "VLAN tags nested too deep",
        0 => "not IPv4/IPv6",
        _ => "other EtherType",
    }
}

impl Stats {
    /// Frames that carried nothing capdiag analyses, by reason. Non-TCP IP traffic (UDP, ICMP)
    /// is listed too: it is not an error, but it is not analysed.
    pub fn skipped(&self) -> Vec<Skipped> {
        let mut v = Vec::new();
        for (lt, t) in &self.unsupported_link {
            v.push(Skipped {
                reason: lt
                    .record_kind()
                    .map_or_else(|| format!("link type {lt} is not decoded"), str::to_string),
                count: t.count,
                first_frame: t.first_frame,
            });
        }
        for (m, t) in &self.malformed {
            v.push(Skipped {
                reason: m.describe().to_string(),
                count: t.count,
                first_frame: t.first_frame,
            });
        }
        if self.fragments.count > 0 {
            v.push(Skipped {
                reason: "IP fragments (not reassembled)".into(),
                count: self.fragments.count,
                first_frame: self.fragments.first_frame,
            });
        }
        for (et, t) in &self.not_ip {
            let reason = if *et == 0 {
                "not IP".to_string()
            } else {
                format!("not IP: {} (EtherType 0x{et:04x})", ethertype_name(*et))
            };
            v.push(Skipped {
                reason,
                count: t.count,
                first_frame: t.first_frame,
            });
        }
        if self.other_ip.count > 0 {
            v.push(Skipped {
                reason: "IP but not TCP (UDP, ICMP, ...)".into(),
                count: self.other_ip.count,
                first_frame: self.other_ip.first_frame,
            });
        }
        v
    }
}

/// What can be made of a frame alone, before the engine sees it (on a reading thread, while
/// the engine works on earlier frames): its decoding, and the HTTP header block at the start
/// of its TCP payload, parsed, kept in a [`HeadStore`].
pub struct Prepared {
    decoded: Option<Detached>,
    /// Which of the store's parsed blocks is this frame's.
    head: Option<u32>,
}

/// Where [`Preparer::prepare`] keeps the header blocks it parses and their header indexes,
/// shared by the frames of a batch: preparing allocates nothing once the store has grown, and
/// a frame without a header block (most of them) carries no room for one to the other thread.
#[derive(Debug, Default)]
pub struct HeadStore {
    heads: Vec<HeadAhead>,
    headers: Vec<HeaderPos>,
}

impl BatchStore for HeadStore {
    fn clear(&mut self) {
        self.heads.clear();
        self.headers.clear();
    }
}

/// Prepares frames for an engine with HTTP header limit `max_headers`
/// ([`Engine::preparer`]).
#[derive(Clone, Copy, Debug)]
pub struct Preparer {
    max_headers: usize,
}

impl Preparer {
    pub fn prepare(&self, frame: &Frame<'_>, store: &mut HeadStore) -> Prepared {
        let decoded = decode::decode(frame);
        let head = match &decoded {
            Decoded::Tcp(seg) => {
                parse_ahead_into(seg.payload, self.max_headers, &mut store.headers).and_then(|h| {
                    let i = u32::try_from(store.heads.len()).ok()?;
                    store.heads.push(h);
                    Some(i)
                })
            }
            _ => None,
        };
        Prepared {
            decoded: decoded.detach(frame.data),
            head,
        }
    }
}

/// The bounds of every layer, built once from the command line.
#[derive(Clone, Copy, Debug, Default)]
pub struct Limits {
    pub flow: crate::flow::Limits,
    pub app: crate::app::Limits,
}

/// Frames in, results out.
pub struct Engine {
    table: FlowTable<Apps>,
    stats: Stats,
    events: Vec<FlowEvent<AppEvent>>,
    last_sweep: Option<TimestampNs>,
    max_ts: TimestampNs,
    last_frame: u64,
    /// The time of the last tick, while no event has been delivered since: a tick at the same
    /// time would tell the sink nothing new.
    ticked: Option<TimestampNs>,
    /// The sink's [`Sink::wakes_at`] after the last event it was given.
    sink_wakes: Option<TimestampNs>,
}

impl Engine {
    pub fn new(limits: Limits) -> Engine {
        Engine {
            table: FlowTable::new(limits.flow, Apps::new(limits.app)),
            stats: Stats::default(),
            events: Vec::new(),
            last_sweep: None,
            max_ts: i64::MIN,
            ticked: None,
            sink_wakes: Some(TimestampNs::MIN),
            last_frame: 0,
        }
    }

    /// Decrypts TLS with the secrets of `keys` (and what the captures bring to it).
    pub fn set_tls_keys(&mut self, keys: std::sync::Arc<crate::tls::KeyStore>) {
        self.table.apps.keys = Some(keys);
    }

    /// What prepares frames for this engine ([`Engine::frame_prepared`]).
    pub fn preparer(&self) -> Preparer {
        Preparer {
            max_headers: self.table.apps.limits.http.max_headers,
        }
    }

    pub fn stats(&self) -> &Stats {
        &self.stats
    }

    /// Flows with full state right now.
    pub fn active_flows(&self) -> usize {
        self.table.active_flows()
    }

    /// Analyses one frame; returns its TCP stream number (`tcp.stream`) when it is TCP.
    pub fn frame(&mut self, frame: &Frame<'_>, sink: &mut dyn Sink) -> Option<u64> {
        self.frame_decoded(frame, decode::decode(frame), sink)
    }

    /// As [`Engine::frame`], for a frame prepared by this engine's [`Engine::preparer`]
    /// (perhaps on the reading thread) with `store`. The results are those of
    /// [`Engine::frame`].
    pub fn frame_prepared(
        &mut self,
        frame: &Frame<'_>,
        prepared: &Prepared,
        store: &HeadStore,
        sink: &mut dyn Sink,
    ) -> Option<u64> {
        let decoded = match &prepared.decoded {
            Some(d) => d.attach(frame.data),
            None => decode::decode(frame),
        };
        let head = prepared
            .head
            .and_then(|i| store.heads.get(i as usize))
            .and_then(|h| h.resolve(&store.headers));
        self.frame_with_head(frame, decoded, head, sink)
    }

    /// As [`Engine::frame`], for a frame already decoded (by [`decode::decode`]).
    pub fn frame_decoded(
        &mut self,
        frame: &Frame<'_>,
        decoded: Decoded<'_>,
        sink: &mut dyn Sink,
    ) -> Option<u64> {
        self.frame_with_head(frame, decoded, None, sink)
    }

    fn frame_with_head(
        &mut self,
        frame: &Frame<'_>,
        decoded: Decoded<'_>,
        head: Option<HeadParsed>,
        sink: &mut dyn Sink,
    ) -> Option<u64> {
        // Deadlines that passed before this frame was captured act first, so a finding holds
        // the evidence that existed at its deadline, in a file as in a live watch.
        if frame.ts > self.max_ts {
            self.tick(frame.ts, sink);
        }
        let s = &mut self.stats;
        s.frames += 1;
        s.captured_bytes += frame.data.len() as u64;
        if s.frames == 1 {
            s.first_ts = Some(frame.ts);
        }
        self.last_frame = frame.number;
        if (frame.wire_len as usize) > frame.data.len() {
            s.snaplen_truncated += 1;
        }
        let mut stream = None;
        match decoded {
            Decoded::Tcp(seg) => {
                s.tcp_segments += 1;
                stream = self.table.segment(frame, &seg, head, &mut self.events);
            }
            Decoded::TcpHeaderOnly(seg, m) => {
                s.malformed.entry(m).or_default().add(frame.number);
                stream = Some(self.table.number_only(frame, &seg, &mut self.events));
            }
            Decoded::IcmpUnreachable(icmp) => {
                // An ICMP error about a connection in the table is part of it (Wireshark gives
                // it the connection's `tcp.stream`, from the TCP header it quotes); others are
                // not TCP.
                stream = self.table.icmp(frame, &icmp, &mut self.events);
                if stream.is_none() {
                    s.other_ip.add(frame.number);
                }
            }
            Decoded::OtherIp => s.other_ip.add(frame.number),
            Decoded::Fragment => s.fragments.add(frame.number),
            Decoded::NotIp(et) => s.not_ip.entry(et).or_default().add(frame.number),
            Decoded::UnsupportedLink(lt) => {
                s.unsupported_link.entry(lt).or_default().add(frame.number)
            }
            Decoded::Malformed(m) => s.malformed.entry(m).or_default().add(frame.number),
        }
        if frame.ts > self.max_ts {
            self.max_ts = frame.ts;
            self.stats.last_ts = Some(frame.ts);
        }
        match self.last_sweep {
            None => self.last_sweep = Some(frame.ts),
            Some(t) if self.max_ts.saturating_sub(t) >= SWEEP_INTERVAL_NS => {
                self.table
                    .sweep(self.max_ts, frame.number, &mut self.events);
                self.last_sweep = Some(self.max_ts);
            }
            Some(_) => {}
        }
        self.deliver(sink);
        if self.ticked != Some(self.max_ts) {
            self.tick(self.max_ts, sink);
        }
        stream
    }

    /// Capture time is `now`: the sink is told when it has something to do then.
    fn tick(&mut self, now: TimestampNs, sink: &mut dyn Sink) {
        if self.sink_wakes.is_some_and(|w| now >= w) {
            sink.event(Event::Tick(now));
            self.sink_wakes = sink.wakes_at();
        }
        self.ticked = Some(now);
    }

    fn deliver(&mut self, sink: &mut dyn Sink) {
        // Most frames end nothing; an empty drain still costs its bookkeeping.
        if self.events.is_empty() {
            return;
        }
        self.ticked = None;
        for ev in self.events.drain(..) {
            match ev {
                FlowEvent::App(AppEvent::Tls(t)) => sink.event(Event::Tls(&t)),
                FlowEvent::App(AppEvent::Http(ex)) => {
                    self.stats.exchanges += 1;
                    self.stats.http_messages += u64::from(ex.request.is_some())
                        + u64::from(ex.response.is_some())
                        + ex.interim.len() as u64;
                    sink.event(Event::Exchange(&ex));
                    // Its messages are built anew in what they leave.
                    let Exchange {
                        request, response, ..
                    } = ex;
                    request
                        .into_iter()
                        .chain(response)
                        .for_each(spare::give_back);
                }
                FlowEvent::Attempt(a) => {
                    self.stats.connection_attempts += 1;
                    sink.event(Event::Attempt(&a));
                }
                FlowEvent::AttemptProgress(a) => sink.event(Event::AttemptProgress(&a)),
                FlowEvent::ConnEnd(c) => sink.event(Event::ConnEnd(&c)),
                FlowEvent::CutShort(e) => sink.event(Event::CutShort(&e)),
                FlowEvent::Stall(s) => sink.event(Event::Stall(&s)),
            }
        }
        self.sink_wakes = sink.wakes_at();
    }

    /// No frame arrived for a while (live capture): let time move on, so idle flows are
    /// finished and rules waiting for a deadline act.
    pub fn idle(&mut self, now: TimestampNs, sink: &mut dyn Sink) {
        if now > self.max_ts {
            self.max_ts = now;
        }
        if self
            .last_sweep
            .is_some_and(|t| self.max_ts.saturating_sub(t) >= SWEEP_INTERVAL_NS)
        {
            self.table
                .sweep(self.max_ts, self.last_frame, &mut self.events);
            self.last_sweep = Some(self.max_ts);
        }
        self.deliver(sink);
        self.tick(self.max_ts, sink);
    }

    /// End of input: every open flow is finished and its results delivered.
    pub fn finish(&mut self, sink: &mut dyn Sink) {
        self.table.finish(self.last_frame, &mut self.events);
        self.deliver(sink);
        sink.event(Event::Finish);
        self.stats.flow = self.table.stats;
        self.stats.http = self.table.apps.http;
        self.stats.tls = self.table.apps.tls;
        if let Some(k) = &self.table.apps.keys {
            self.stats.tls_keys = k.stats();
        }
    }
}
