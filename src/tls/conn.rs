//! One TLS connection read without keys: each direction's records and handshake messages, and,
//! when the connection ends, what it showed ([`TlsSummary`]) and how the handshake went
//! ([`Outcome`]).
//!
//! Which side is the client is what sent the ClientHello. After the ServerHello of TLS 1.3
//! (and after a ChangeCipherSpec in TLS ≤ 1.2) a direction is encrypted: its records are
//! counted, with their sizes where a size says something (TLS 1.3 hides an alert in a record
//! of 19 bytes under AES-GCM and ChaCha20-Poly1305: 2 bytes, the inner type, a 16-byte tag).

use super::handshake::{self, CertInfo, ClientHello, Messages, Parsed, ServerHello};
use super::record::{self, Broken, Record, Records};
use super::{Limits, TlsStats};
use crate::flow::Origin;
use serde::Serialize;
use std::net::SocketAddr;

/// Bytes kept of a direction that turned out not to be TLS (an HTTP answer to a ClientHello).
const PLAINTEXT_KEPT: usize = 256;
/// Alerts kept per connection; more are counted.
const MAX_ALERTS: usize = 8;
/// Encrypted record sizes kept per direction (the first ones after the handshake).
const SIZES_KEPT: usize = 4;
/// An encrypted alert's record body under the AEADs TLS 1.3 uses (2 + 1 + 16).
pub const ENCRYPTED_ALERT_LEN: usize = 19;

/// How the handshake went (Zeek's `established`, with the side that ended it).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// Application data went both ways.
    Established,
    /// The client ended it after the server's flight: an alert, or a close before its
    /// Finished.
    RejectedByClient,
    /// The handshake completed and the connection closed before any application data: a
    /// client rejecting the certificate after the handshake (curl on a name mismatch), or a
    /// connection opened and never used (a browser's spare).
    HandshakeOnly,
    /// The server ended it after the ClientHello: an alert or a close.
    RejectedByServer,
    /// One side spoke TLS and the other did not.
    NotTls,
    /// The connection ended (or the capture did) with the handshake unfinished and no side
    /// seen to end it.
    Cut,
}

impl Outcome {
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Established => "established",
            Outcome::RejectedByClient => "rejected by the client",
            Outcome::HandshakeOnly => "handshake only, no data",
            Outcome::RejectedByServer => "rejected by the server",
            Outcome::NotTls => "not TLS",
            Outcome::Cut => "cut short",
        }
    }
}

/// An alert record.
#[derive(Clone, Debug, Serialize, PartialEq, Eq)]
pub struct Alert {
    pub frame: u64,
    /// Sent by the client (else by the server).
    pub from_client: bool,
    /// Level and description, when sent in plaintext.
    pub level: Option<u8>,
    pub description: Option<u8>,
    /// Sent encrypted: a TLS ≤ 1.2 alert record after ChangeCipherSpec, or a TLS 1.3 record of
    /// an alert's size ending the client's side after the server's flight.
    pub encrypted: bool,
}

/// One direction's traffic, as the summary shows it.
#[derive(Clone, Debug, Default, Serialize, PartialEq, Eq)]
pub struct Side {
    /// Records, and encrypted records (application data, and in TLS 1.3 the rest of the
    /// handshake) with their body bytes.
    pub records: u64,
    pub encrypted_records: u64,
    /// Of those, application data records (content type 23; in TLS 1.3 every encrypted one).
    pub application_records: u64,
    pub encrypted_bytes: u64,
    /// Frames of its first encrypted record and of its ChangeCipherSpec.
    pub first_encrypted_frame: Option<u64>,
    pub change_cipher_spec_frame: Option<u64>,
    /// Body sizes of its first encrypted records, and their frames.
    pub first_encrypted_sizes: Vec<usize>,
    pub first_encrypted_frames: Vec<u64>,
    /// Its FIN, and when.
    pub fin_frame: Option<u64>,
    pub fin_ts: Option<i64>,
    /// When its last record completed.
    pub last_record_ts: Option<i64>,
    /// Why its bytes stopped being read as TLS, if they did.
    pub broken: Option<&'static str>,
}

/// What a TLS connection showed without keys.
#[derive(Clone, Debug, Serialize)]
pub struct TlsSummary {
    pub stream: u64,
    pub client: SocketAddr,
    pub server: SocketAddr,
    pub client_hello: Option<ClientHello>,
    pub server_hello: Option<ServerHello>,
    pub hello_retry_request: bool,
    /// The chain a TLS ≤ 1.2 server sent (leaf first), and the frame of its Certificate.
    pub certificates: Vec<CertInfo>,
    pub certificate_frame: Option<u64>,
    pub certificates_not_read: usize,
    pub alerts: Vec<Alert>,
    pub alerts_not_kept: u64,
    pub client_side: Side,
    pub server_side: Side,
    /// The first bytes of a side that is not TLS, and their frame.
    pub plaintext: Option<(u64, String)>,
    pub outcome: Outcome,
    /// The frame that shows the outcome: the first application data of the server after the
    /// client's, the alert, or the close.
    pub outcome_frame: Option<u64>,
}

/// One direction.
#[derive(Debug, Default)]
struct Dir {
    records: Records,
    messages: Messages,
    side: Side,
    /// Its records are encrypted from here on.
    encrypted: bool,
    /// Bytes of a direction that is not TLS.
    plaintext: Vec<u8>,
    plaintext_frame: u64,
    any: bool,
    midstream: bool,
}

/// The pair's item `c` and the other one (`c` is a direction: 0 or 1).
fn split<T>(pair: &[T; 2], c: usize) -> (&T, &T) {
    let [a, b] = pair;
    if c == 0 { (a, b) } else { (b, a) }
}

/// A connection whose first bytes were a TLS record.
#[derive(Debug)]
pub struct TlsConn {
    stream: u64,
    ends: [SocketAddr; 2],
    limits: Limits,
    dirs: [Dir; 2],
    /// The direction that sent the ClientHello.
    client: Option<usize>,
    client_hello: Option<ClientHello>,
    server_hello: Option<ServerHello>,
    hello_retry: bool,
    certificates: Vec<CertInfo>,
    certificate_frame: Option<u64>,
    certificates_not_read: usize,
    alerts: Vec<Alert>,
    alerts_not_kept: u64,
    pub stats: TlsStats,
    done: Option<TlsSummary>,
    closed: bool,
}

impl TlsConn {
    pub fn new(stream: u64, ends: [SocketAddr; 2], limits: Limits) -> TlsConn {
        TlsConn {
            stream,
            ends,
            limits,
            dirs: Default::default(),
            client: None,
            client_hello: None,
            server_hello: None,
            hello_retry: false,
            certificates: Vec::new(),
            certificate_frame: None,
            certificates_not_read: 0,
            alerts: Vec::new(),
            alerts_not_kept: 0,
            stats: TlsStats {
                connections: 1,
                ..TlsStats::default()
            },
            done: None,
            closed: false,
        }
    }

    pub fn start_midstream(&mut self, dir: usize) {
        if let Some(d) = self.dirs.get_mut(dir) {
            d.midstream = true;
        }
    }

    pub fn data(&mut self, dir: usize, bytes: &[u8], o: Origin) {
        let Some(d) = self.dirs.get_mut(dir) else {
            return;
        };
        let first = !d.any;
        d.any = true;
        if first
            && !matches!(
                bytes.first(),
                Some(&(record::CHANGE_CIPHER_SPEC..=record::HEARTBEAT))
            )
        {
            // Not TLS from its first byte: kept as the answer it is (an HTTP 400 to a
            // ClientHello).
            d.records.broken = Some(Broken::NotARecord);
        }
        if d.records.broken.is_some() {
            if d.plaintext.len() < PLAINTEXT_KEPT {
                if d.plaintext.is_empty() {
                    d.plaintext_frame = o.frame;
                }
                let take = (PLAINTEXT_KEPT - d.plaintext.len()).min(bytes.len());
                d.plaintext
                    .extend_from_slice(bytes.get(..take).unwrap_or_default());
            }
            return;
        }
        let mut records = std::mem::take(&mut d.records);
        records.feed(bytes, o, &mut |r| self.record(dir, r));
        if let Some(d) = self.dirs.get_mut(dir) {
            if records.broken.is_some() {
                self.stats.not_records += 1;
            }
            d.records = records;
        }
    }

    fn record(&mut self, dir: usize, r: Record<'_>) {
        let limit = self.limits.max_handshake;
        let Some(d) = self.dirs.get_mut(dir) else {
            return;
        };
        d.side.records += 1;
        d.side.last_record_ts = Some(r.ts);
        match r.content_type {
            record::CHANGE_CIPHER_SPEC => {
                d.side.change_cipher_spec_frame.get_or_insert(r.frame);
                // TLS ≤ 1.2: what follows is encrypted. (TLS 1.3's is for middleboxes only.)
                if self
                    .server_hello
                    .as_ref()
                    .is_none_or(|h| h.version < 0x0304)
                {
                    d.encrypted = true;
                }
            }
            record::ALERT => {
                let plain = !d.encrypted && r.body.len() == 2;
                let alert = Alert {
                    frame: r.frame,
                    from_client: Some(dir) == self.client,
                    level: r.body.first().copied().filter(|_| plain),
                    description: r.body.get(1).copied().filter(|_| plain),
                    encrypted: !plain,
                };
                if self.alerts.len() < MAX_ALERTS {
                    self.alerts.push(alert);
                } else {
                    self.alerts_not_kept += 1;
                }
            }
            record::HANDSHAKE if d.encrypted => Self::encrypted(d, &r),
            record::HANDSHAKE => {
                let mut messages = std::mem::take(&mut d.messages);
                let mut parsed = Vec::new();
                messages.feed(r.body, r.first_frame, r.frame, r.ts, limit, &mut |m| {
                    parsed.push((m.kind, m.frame, handshake::parse(&m)));
                });
                if messages.overflowed {
                    self.stats.handshake_limit_hits += 1;
                }
                if let Some(d) = self.dirs.get_mut(dir) {
                    d.messages = messages;
                }
                for (_, frame, p) in parsed {
                    self.handshake(dir, frame, p);
                }
            }
            record::APPLICATION_DATA => {
                d.side.application_records += 1;
                Self::encrypted(d, &r);
            }
            _ => {}
        }
    }

    fn encrypted(d: &mut Dir, r: &Record<'_>) {
        let s = &mut d.side;
        s.encrypted_records += 1;
        s.encrypted_bytes += r.len as u64;
        s.first_encrypted_frame.get_or_insert(r.frame);
        if s.first_encrypted_sizes.len() < SIZES_KEPT {
            s.first_encrypted_sizes.push(r.len);
            s.first_encrypted_frames.push(r.frame);
        }
    }

    fn handshake(&mut self, dir: usize, frame: u64, p: Parsed) {
        match p {
            Parsed::ClientHello(h) => {
                if self.client.is_none() {
                    self.client = Some(dir);
                }
                // After a HelloRetryRequest the second hello is kept: it is what the server
                // answers.
                self.client_hello = Some(h);
            }
            Parsed::ServerHello(h) => {
                if self.client.is_none() {
                    self.client = Some(1 - dir.min(1));
                }
                if h.version >= 0x0304
                    && let Some(d) = self.dirs.get_mut(dir)
                {
                    // TLS 1.3: the server's records after its hello are encrypted, and the
                    // client's after its next flight (counted as encrypted when they come:
                    // they are application data records).
                    d.encrypted = true;
                }
                self.server_hello = Some(h);
            }
            Parsed::HelloRetryRequest => self.hello_retry = true,
            Parsed::Certificates(certs, total) => {
                if Some(dir) != self.client && self.certificate_frame.is_none() {
                    self.certificate_frame = Some(frame);
                    self.certificates_not_read = total.saturating_sub(certs.len());
                    self.certificates = certs;
                }
            }
            Parsed::Malformed => self.stats.malformed_handshakes += 1,
            Parsed::Other => {}
        }
    }

    pub fn gap(&mut self, dir: usize, _len: u64, _o: Origin) {
        // Records cannot be followed across missing bytes.
        if let Some(d) = self.dirs.get_mut(dir)
            && d.records.broken.is_none()
        {
            d.records.broken = Some(Broken::NotARecord);
            d.side.broken = Some("bytes missing from the capture");
            self.stats.gaps += 1;
        }
    }

    pub fn fin(&mut self, dir: usize, o: Origin) {
        if let Some(d) = self.dirs.get_mut(dir) {
            d.side.fin_frame.get_or_insert(o.frame);
            d.side.fin_ts.get_or_insert(o.ts);
        }
    }

    pub fn close(&mut self, _o: Origin) {
        if self.closed {
            return;
        }
        self.closed = true;
        let summary = self.summary();
        let st = &mut self.stats;
        *match summary.outcome {
            Outcome::Established => &mut st.established,
            Outcome::RejectedByClient => &mut st.rejected_by_client,
            Outcome::RejectedByServer => &mut st.rejected_by_server,
            Outcome::HandshakeOnly => &mut st.handshake_only,
            Outcome::NotTls => &mut st.not_tls,
            Outcome::Cut => &mut st.cut,
        } += 1;
        self.done = Some(summary);
    }

    pub fn is_done(&self) -> bool {
        self.closed
    }

    pub fn has_events(&self) -> bool {
        self.done.is_some()
    }

    pub fn take_summary(&mut self) -> Option<TlsSummary> {
        self.done.take()
    }

    /// Whether a side answered in plain HTTP (an `HTTP/` status line).
    pub fn answered_in_http(&self) -> bool {
        self.dirs.iter().any(|d| d.plaintext.starts_with(b"HTTP/"))
    }

    /// Whether a TLS handshake was seen (a hello parsed).
    pub fn is_tls(&self) -> bool {
        self.client_hello.is_some() || self.server_hello.is_some()
    }

    fn summary(&mut self) -> TlsSummary {
        let c = self.client.unwrap_or(0).min(1);
        for d in &mut self.dirs {
            if d.side.broken.is_none() {
                d.side.broken = match d.records.broken {
                    Some(Broken::NotARecord) if !d.plaintext.is_empty() => Some("not TLS records"),
                    Some(Broken::NotARecord) => Some("a header that is not a TLS record's"),
                    Some(Broken::TooLong) => Some("a record longer than TLS allows"),
                    None => None,
                };
            }
        }
        let plaintext = self.dirs.iter().find(|d| !d.plaintext.is_empty()).map(|d| {
            let line = d
                .plaintext
                .split(|&b| b == b'\n')
                .next()
                .unwrap_or_default();
            (
                d.plaintext_frame,
                crate::text::lossless(line.trim_ascii_end()),
            )
        });
        let (outcome, outcome_frame) = self.outcome(c);
        TlsSummary {
            stream: self.stream,
            client: *split(&self.ends, c).0,
            server: *split(&self.ends, c).1,
            client_hello: self.client_hello.clone(),
            server_hello: self.server_hello.clone(),
            hello_retry_request: self.hello_retry,
            certificates: std::mem::take(&mut self.certificates),
            certificate_frame: self.certificate_frame,
            certificates_not_read: self.certificates_not_read,
            alerts: std::mem::take(&mut self.alerts),
            alerts_not_kept: self.alerts_not_kept,
            client_side: split(&self.dirs, c).0.side.clone(),
            server_side: split(&self.dirs, c).1.side.clone(),
            plaintext,
            outcome,
            outcome_frame,
        }
    }

    /// The first FIN, or the first alert when there is no FIN.
    fn close_frame(&self) -> Option<u64> {
        let fins = self.dirs.iter().map(|d| d.side.fin_frame);
        fins.flatten()
            .min()
            .or_else(|| self.alerts.first().map(|a| a.frame))
    }

    /// How the handshake went, and the frame that shows it.
    fn outcome(&self, c: usize) -> (Outcome, Option<u64>) {
        let (cd, sd) = split(&self.dirs, c);
        if self.client_hello.is_some() && !sd.plaintext.is_empty() {
            return (Outcome::NotTls, Some(sd.plaintext_frame));
        }
        if self.client_hello.is_none() && self.server_hello.is_none() {
            return (
                if cd.plaintext.is_empty() && sd.plaintext.is_empty() {
                    Outcome::Cut
                } else {
                    Outcome::NotTls
                },
                None,
            );
        }
        if sd.side.records == 0 && cd.side.encrypted_records > 0 {
            // The client went on past its hello, which needs the server's answer: the server's
            // side is not in the capture (a capture of one direction).
            return (Outcome::Cut, None);
        }
        let tls13 = self
            .server_hello
            .as_ref()
            .is_some_and(|h| h.version >= 0x0304);
        // The client's application data: in TLS 1.3 its records after its Finished (the first
        // encrypted one, unless it only sent one); in TLS ≤ 1.2 every record after its
        // ChangeCipherSpec is application data but the Finished (an encrypted handshake
        // record, not counted as application data here).
        let client_data = if tls13 {
            cd.side.application_records >= 2
                && cd
                    .side
                    .first_encrypted_sizes
                    .iter()
                    .skip(1)
                    .any(|&n| n != ENCRYPTED_ALERT_LEN)
        } else {
            cd.side.application_records >= 1
        };
        let server_data = sd.side.application_records >= 1;
        let fatal = |from_client: bool| {
            self.alerts
                .iter()
                .find(|a| a.from_client == from_client && (a.level == Some(2) || a.encrypted))
        };
        if client_data && server_data {
            return (Outcome::Established, cd.side.first_encrypted_frame);
        }
        if let Some(a) = fatal(false).filter(|a| a.level == Some(2)) {
            return (Outcome::RejectedByServer, Some(a.frame));
        }
        if let Some(a) = fatal(true).filter(|a| !a.encrypted) {
            return (Outcome::RejectedByClient, Some(a.frame));
        }
        if self.server_hello.is_none() {
            // The server answered nothing of a handshake: who closed says who ended it.
            return match (cd.side.fin_frame, sd.side.fin_frame) {
                (_, Some(f)) => (Outcome::RejectedByServer, Some(f)),
                (Some(f), None) => (Outcome::RejectedByClient, Some(f)),
                (None, None) => (Outcome::Cut, None),
            };
        }
        let first = cd.side.first_encrypted_sizes.first().copied();
        if tls13 {
            // A single small encrypted record from the client, before any Finished: an alert
            // (19 bytes from Go, 35 from Java).
            if cd.side.application_records == 1 && first.is_some_and(|n| n <= 35) {
                return (Outcome::RejectedByClient, cd.side.first_encrypted_frame);
            }
            // Its Finished (53 or 69 bytes: SHA-256 or SHA-384 suites), and nothing but
            // alerts after it.
            if first.is_some_and(|n| n >= 53) {
                return match self.close_frame() {
                    Some(f) => (Outcome::HandshakeOnly, Some(f)),
                    None => (Outcome::Cut, None),
                };
            }
        } else if cd.side.change_cipher_spec_frame.is_some()
            && sd.side.change_cipher_spec_frame.is_some()
        {
            return match self.close_frame() {
                Some(f) => (Outcome::HandshakeOnly, Some(f)),
                None => (Outcome::Cut, None),
            };
        } else if let Some(a) = fatal(true).filter(|_| cd.side.application_records == 0) {
            return (Outcome::RejectedByClient, Some(a.frame));
        }
        match (cd.side.fin_frame, sd.side.fin_frame) {
            (Some(cf), Some(sf)) if cf <= sf => (Outcome::RejectedByClient, Some(cf)),
            (Some(cf), None) => (Outcome::RejectedByClient, Some(cf)),
            (_, Some(sf)) => (Outcome::RejectedByServer, Some(sf)),
            (None, None) => (Outcome::Cut, None),
        }
    }
}
