//! One TLS connection read without keys: each direction's records and handshake messages, and,
//! when the connection ends, what it showed ([`TlsSummary`]) and how the handshake went
//! ([`Outcome`]).
//!
//! Which side is the client is what sent the ClientHello. After the ServerHello of TLS 1.3
//! (and after a ChangeCipherSpec in TLS ≤ 1.2) a direction is encrypted: its records are
//! counted, with their sizes where a size says something (TLS 1.3 hides an alert in a record
//! of 19 bytes under AES-GCM and ChaCha20-Poly1305: 2 bytes, the inner type, a 16-byte tag).

use super::crypto::{self, Protection, Suite};
use super::handshake::{self, CertInfo, ClientHello, Messages, Parsed, ServerHello};
use super::keys::KeyStore;
use super::record::{self, Broken, Record, Records};
use super::{Limits, TlsStats};
use crate::flow::Origin;
use serde::Serialize;
use std::net::SocketAddr;
use std::sync::Arc;

/// Where decrypted application data goes: its direction, bytes and origin (the frame that
/// completed its record, where Wireshark shows what it holds).
pub type Plain<'a> = &'a mut dyn FnMut(usize, &[u8], Origin);

/// Why decrypting a TLS 1.2 connection stopped at a ChangeCipherSpec under keys in use.
const RENEGOTIATION: &str = "a TLS 1.2 renegotiation, not followed";

/// Bytes of records held per connection while its secrets are awaited (a followed key log).
const MAX_HELD: usize = 1024 * 1024;

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
    /// Capture time of the frame.
    #[serde(skip)]
    pub ts: i64,
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
    /// How decryption went, when the run has secrets (a key log, or a pcapng's) and the
    /// handshake got as far as a ServerHello.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub decryption: Option<Decryption>,
}

/// Whether a connection's records were decrypted.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum DecryptStatus {
    /// Every record that was to be decrypted was.
    Decrypted,
    /// No secrets for its ClientHello random (or not the ones its version needs).
    NoKey,
    /// A cipher suite capdiag does not decrypt (CBC, CCM ...).
    UnsupportedSuite,
    /// A record did not authenticate with the secrets given: a wrong key, or records the
    /// reader lost step with (0-RTT data, a renegotiation); the direction was not read on.
    Failed,
}

impl DecryptStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            DecryptStatus::Decrypted => "decrypted",
            DecryptStatus::NoKey => "no key",
            DecryptStatus::UnsupportedSuite => "unsupported suite",
            DecryptStatus::Failed => "decryption failed",
        }
    }
}

/// What decrypting a connection gave.
#[derive(Clone, Debug, Serialize, PartialEq, Eq)]
pub struct Decryption {
    pub status: DecryptStatus,
    /// Records decrypted, and the first that did not authenticate.
    pub records: u64,
    pub failed_frame: Option<u64>,
    /// The application protocol the server chose (ALPN: in TLS 1.3 read from its encrypted
    /// extensions).
    pub alpn: Option<String>,
    /// HTTP/2 (ALPN `h2`): counted, not parsed.
    pub http2: bool,
    /// TLS 1.3 early data (0-RTT) records of the client: counted, not decrypted.
    pub early_data_records: u64,
    /// Where decrypting stopped short, and why (a TLS 1.2 renegotiation, not followed; a key
    /// log without the application traffic secrets).
    pub stopped_frame: Option<u64>,
    pub stopped: Option<&'static str>,
}

/// One direction's decryption. Its `Debug` shows no key material.
#[derive(Default)]
struct DirKeys {
    prot: Option<Protection>,
    /// TLS 1.2: its protection from its ChangeCipherSpec on.
    next: Option<Protection>,
    /// TLS 1.3: its current traffic secret, and the application one its Finished starts.
    secret: Vec<u8>,
    app_secret: Vec<u8>,
    /// Decrypted handshake messages (TLS 1.3's flight, tickets, KeyUpdate; TLS 1.2's
    /// Finished).
    messages: Messages,
    /// A record did not authenticate, or decrypting stopped: not read on.
    failed: bool,
    /// TLS 1.3: its Finished was read (a later one is post-handshake authentication's).
    finished: bool,
    /// A record of it opened (before that, the client's records that do not are early data).
    opened_any: bool,
}

impl std::fmt::Debug for DirKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DirKeys")
            .field("prot", &self.prot.as_ref().map(Protection::seq))
            .field("failed", &self.failed)
            .field("finished", &self.finished)
            .finish_non_exhaustive()
    }
}

/// A connection's decryption, once its ServerHello was read with secrets.
#[derive(Debug)]
struct Keyed {
    suite: Suite,
    dirs: [DirKeys; 2],
}

/// A decrypted handshake message, as far as it matters here.
enum Decrypted {
    /// EncryptedExtensions, with the ALPN protocol it names.
    Alpn(Option<String>),
    /// A TLS 1.3 Certificate (`None`: malformed).
    Certificates(Option<(Vec<CertInfo>, usize)>),
    Finished,
    KeyUpdate,
    Other,
}

/// A record kept while the connection's secrets are awaited.
#[derive(Debug)]
struct Held {
    dir: usize,
    header: [u8; 5],
    body: Vec<u8>,
    first_frame: u64,
    frame: u64,
    ts: i64,
    arrival: u64,
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
    /// The run's secrets, if it has any.
    keys: Option<Arc<KeyStore>>,
    /// Bodies of every record are kept (to be decrypted).
    keep_all: bool,
    keyed: Option<Box<Keyed>>,
    decryption: Option<Box<Decryption>>,
    /// Records waiting for secrets a followed key log may still bring, and their bytes.
    held: Option<Box<(Vec<Held>, usize)>>,
    waiting: bool,
}

impl Drop for TlsConn {
    fn drop(&mut self) {
        // Records still held give their share of the run's budget back.
        self.stop_waiting();
    }
}

impl TlsConn {
    pub fn new(
        stream: u64,
        ends: [SocketAddr; 2],
        limits: Limits,
        keys: Option<Arc<KeyStore>>,
    ) -> TlsConn {
        let keep_all = keys.as_ref().is_some_and(|k| k.has_any());
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
            keys,
            keep_all,
            keyed: None,
            decryption: None,
            held: None,
            waiting: false,
        }
    }

    pub fn start_midstream(&mut self, dir: usize) {
        if let Some(d) = self.dirs.get_mut(dir) {
            d.midstream = true;
        }
    }

    /// In-order bytes of direction `dir`; what it decrypts of application data goes to
    /// `plain`.
    pub fn data(&mut self, dir: usize, bytes: &[u8], o: Origin, plain: Plain<'_>) {
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
        records.feed(bytes, o, self.keep_all, &mut |r| {
            self.record(dir, r, o.arrival, plain)
        });
        if let Some(d) = self.dirs.get_mut(dir) {
            if records.broken.is_some() {
                self.stats.not_records += 1;
            }
            d.records = records;
        }
    }

    /// A record completed: read, decrypted when it can be. The answer is whether the bodies
    /// of every record are wanted from now on (secrets came).
    fn record(&mut self, dir: usize, r: Record<'_>, arrival: u64, plain: Plain<'_>) -> bool {
        self.read_record(dir, r, arrival, plain);
        self.keep_all
    }

    fn read_record(&mut self, dir: usize, mut r: Record<'_>, arrival: u64, plain: Plain<'_>) {
        let opened = if self.keyed.is_some() || self.waiting {
            self.decrypt(dir, &mut r, arrival, plain)
        } else {
            None
        };
        let limit = self.limits.max_handshake;
        let Some(d) = self.dirs.get_mut(dir) else {
            return;
        };
        d.side.records += 1;
        d.side.last_record_ts = Some(r.ts);
        match r.content_type {
            record::CHANGE_CIPHER_SPEC => {
                d.side.change_cipher_spec_frame.get_or_insert(r.frame);
                // TLS ≤ 1.2: what follows is encrypted. (TLS 1.3's is for middleboxes only,
                // and so is one after a HelloRetryRequest, before the second ClientHello.)
                if !self.hello_retry
                    && self
                        .server_hello
                        .as_ref()
                        .is_none_or(|h| h.version < 0x0304)
                {
                    d.encrypted = true;
                }
            }
            // Decrypted, it was read when it opened (`decrypted_alert`).
            record::ALERT if opened.is_none() => {
                let known = !d.encrypted && r.body.len() == 2;
                let alert = Alert {
                    frame: r.frame,
                    from_client: Some(dir) == self.client,
                    level: r.body.first().copied().filter(|_| known),
                    description: r.body.get(1).copied().filter(|_| known),
                    encrypted: d.encrypted || !known,
                    ts: r.ts,
                };
                self.push_alert(alert);
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

    /// A decrypted alert record (`content` its plaintext): a TLS 1.2 alert held for late
    /// secrets was counted when it came, encrypted, and now says what it was; any other is
    /// added.
    fn decrypted_alert(&mut self, dir: usize, frame: u64, ts: i64, content: &[u8]) {
        let from_client = Some(dir) == self.client;
        let (level, description) = match content {
            [level, description] => (Some(*level), Some(*description)),
            _ => (None, None),
        };
        let counted = self
            .alerts
            .iter_mut()
            .find(|a| a.frame == frame && a.from_client == from_client && a.level.is_none());
        match counted {
            Some(a) => {
                a.level = level;
                a.description = description;
            }
            None => self.push_alert(Alert {
                frame,
                from_client,
                level,
                description,
                encrypted: true,
                ts,
            }),
        }
    }

    fn push_alert(&mut self, alert: Alert) {
        if self.alerts.len() < MAX_ALERTS {
            self.alerts.push(alert);
        } else {
            self.alerts_not_kept += 1;
        }
    }

    /// A record of a connection with keys, or waiting for them: decrypted, or held.
    #[inline(never)]
    fn decrypt(
        &mut self,
        dir: usize,
        r: &mut Record<'_>,
        arrival: u64,
        plain: Plain<'_>,
    ) -> Option<crypto::Opened> {
        if self.waiting {
            self.hold(dir, r, arrival, plain);
            return None;
        }
        self.open(dir, r, arrival, plain)
    }

    /// Decrypts a protected record with the connection's keys, in place; the result when it
    /// opened. Application data goes to `plain`; decrypted handshake messages and TLS 1.3
    /// alerts are read here.
    fn open(
        &mut self,
        dir: usize,
        r: &mut Record<'_>,
        arrival: u64,
        plain: Plain<'_>,
    ) -> Option<crypto::Opened> {
        let keyed = self.keyed.as_mut()?;
        let suite = keyed.suite;
        let k = keyed.dirs.get_mut(dir)?;
        if r.content_type == record::CHANGE_CIPHER_SPEC && !suite.tls13 {
            if let Some(next) = k.next.take() {
                k.prot = Some(next);
                return None;
            }
            if k.prot.is_some() && !k.failed {
                // A ChangeCipherSpec under keys already in use: a renegotiation, whose new
                // keys come from hellos this reader does not follow.
                k.failed = true;
                if let Some(dec) = &mut self.decryption {
                    dec.stopped_frame.get_or_insert(r.frame);
                    dec.stopped.get_or_insert(RENEGOTIATION);
                }
            }
            return None;
        }
        if k.failed
            || (suite.tls13 && r.content_type != record::APPLICATION_DATA)
            || r.body.len() != r.len
        {
            return None;
        }
        let client = Some(dir) == self.client;
        let prot = k.prot.as_mut()?;
        let opened = match prot.open(r.header, r.body) {
            Ok(o) => o,
            Err(_) if suite.tls13 && client && !k.opened_any => {
                // TLS 1.3 early data (0-RTT), under a key the log does not give here, or
                // rejected by the server: passed over until the client's handshake records.
                if let Some(dec) = &mut self.decryption {
                    dec.early_data_records += 1;
                }
                return None;
            }
            Err(_) => {
                k.failed = true;
                if let Some(dec) = &mut self.decryption {
                    dec.failed_frame.get_or_insert(r.frame);
                }
                return None;
            }
        };
        k.opened_any = true;
        let content = r.body.get(opened.start..opened.end).unwrap_or_default();
        let dec = self.decryption.as_mut()?;
        dec.records += 1;
        match opened.content_type {
            record::APPLICATION_DATA if !dec.http2 => {
                let o = Origin {
                    frame: r.frame,
                    arrival,
                    ts: r.ts,
                };
                plain(dir, content, o);
            }
            record::HANDSHAKE => {
                let limit = self.limits.max_handshake;
                let mut events = Vec::new();
                let mut messages = std::mem::take(&mut k.messages);
                let skipped = messages.skipped;
                messages.feed_skipping(content, r.first_frame, r.frame, r.ts, limit, &mut |m| {
                    let body = m.bytes.get(4..).unwrap_or_default();
                    events.push(match m.kind {
                        8 => Decrypted::Alpn(handshake::encrypted_extensions_alpn(body)),
                        11 => Decrypted::Certificates(handshake::certificates_tls13(body)),
                        20 => Decrypted::Finished,
                        24 => Decrypted::KeyUpdate,
                        _ => Decrypted::Other,
                    });
                });
                if messages.skipped > skipped {
                    self.stats.handshake_limit_hits += messages.skipped - skipped;
                }
                k.messages = messages;
                for e in events {
                    self.decrypted_handshake(dir, r.frame, suite, e);
                }
            }
            record::ALERT => self.decrypted_alert(dir, r.frame, r.ts, content),
            _ => {}
        }
        Some(opened)
    }

    /// A handshake message decrypted from direction `dir`.
    fn decrypted_handshake(&mut self, dir: usize, frame: u64, suite: Suite, e: Decrypted) {
        let server = Some(dir) != self.client;
        match e {
            Decrypted::Alpn(alpn) => {
                if let Some(dec) = &mut self.decryption {
                    dec.http2 = alpn.as_deref() == Some("h2");
                    dec.alpn = alpn;
                }
            }
            Decrypted::Certificates(Some((certs, total)))
                if server && self.certificate_frame.is_none() =>
            {
                self.certificate_frame = Some(frame);
                self.certificates_not_read = total.saturating_sub(certs.len());
                self.certificates = certs;
            }
            Decrypted::Certificates(None) => self.stats.malformed_handshakes += 1,
            // TLS 1.3: the next record is under the application secret, or the next one. A
            // Finished after the first is post-handshake authentication's: no new keys.
            Decrypted::Finished | Decrypted::KeyUpdate if suite.tls13 => {
                let finished = matches!(e, Decrypted::Finished);
                let missing = self
                    .keyed
                    .as_ref()
                    .and_then(|k| k.dirs.get(dir))
                    .is_some_and(|k| finished && !k.finished && k.app_secret.is_empty());
                if missing {
                    // The key log may have been read between the handshake secrets and the
                    // application ones: once more, now.
                    self.refresh_app_secrets(frame);
                }
                let Some(k) = self.keyed.as_mut().and_then(|k| k.dirs.get_mut(dir)) else {
                    return;
                };
                if finished && k.finished {
                    return;
                }
                let next = if finished {
                    k.finished = true;
                    std::mem::take(&mut k.app_secret)
                } else {
                    crypto::next_secret(suite.hash, &k.secret).unwrap_or_default()
                };
                k.prot = Protection::tls13(suite, &next);
                k.secret = next;
                if k.prot.is_none() {
                    k.failed = true;
                    if let Some(dec) = &mut self.decryption {
                        dec.stopped_frame.get_or_insert(frame);
                        dec.stopped
                            .get_or_insert("the key log has no application traffic secret for it");
                    }
                }
            }
            _ => {}
        }
    }

    /// Looks the connection's secrets up again (reading followed key logs now) for the TLS
    /// 1.3 application secrets a direction lacks.
    fn refresh_app_secrets(&mut self, frame: u64) {
        let (Some(store), Some(ch), Some(client)) = (&self.keys, &self.client_hello, self.client)
        else {
            return;
        };
        let Some(secrets) = store.lookup_now(&ch.random, frame) else {
            return;
        };
        let Some(keyed) = self.keyed.as_mut() else {
            return;
        };
        for (d, k) in keyed.dirs.iter_mut().enumerate() {
            let s = if d == client {
                &secrets.client_traffic
            } else {
                &secrets.server_traffic
            };
            if k.app_secret.is_empty()
                && !k.finished
                && let Some(s) = s
            {
                k.app_secret = s.bytes().to_vec();
            }
        }
    }

    /// Secrets for the connection, once its ServerHello is read: its keys, or why there are
    /// none. `now`: read followed key logs whatever the interval; `frame`: the frame being read.
    fn setup_keys(&mut self, now: bool, frame: u64) {
        let (Some(store), Some(ch), Some(sh), Some(client)) = (
            &self.keys,
            &self.client_hello,
            &self.server_hello,
            self.client,
        ) else {
            return;
        };
        if !store.has_any() {
            // No key log given: the summary says so once for all.
            return;
        }
        let mut dec = Self::undecrypted(sh);
        let Some(suite) = Suite::chosen(sh.cipher_suite, sh.version) else {
            self.decryption = Some(Box::new(dec));
            return;
        };
        let secrets = if now {
            store.lookup_now(&ch.random, frame)
        } else {
            store.lookup_at(&ch.random, frame)
        };
        let keyed = secrets.and_then(|secrets| Self::keyed(suite, &secrets, ch, sh, client));
        self.waiting = keyed.is_none() && store.follows();
        if keyed.is_some() {
            dec.status = DecryptStatus::Decrypted;
        }
        // Secrets came after the connection began (a pcapng's, read later): bodies are kept
        // from now on.
        self.keep_all |= keyed.is_some() || self.waiting;
        self.keyed = keyed;
        self.decryption = Some(Box::new(dec));
    }

    /// What decrypting a connection with this ServerHello gave before any secret: no key, or
    /// a suite not decrypted.
    fn undecrypted(sh: &ServerHello) -> Decryption {
        Decryption {
            status: if Suite::chosen(sh.cipher_suite, sh.version).is_some() {
                DecryptStatus::NoKey
            } else {
                DecryptStatus::UnsupportedSuite
            },
            records: 0,
            failed_frame: None,
            alpn: sh.alpn.clone(),
            http2: sh.alpn.as_deref() == Some("h2"),
            early_data_records: 0,
            stopped_frame: None,
            stopped: None,
        }
    }

    fn keyed(
        suite: Suite,
        secrets: &super::keylog::Secrets,
        ch: &ClientHello,
        sh: &ServerHello,
        client: usize,
    ) -> Option<Box<Keyed>> {
        let (mut c, mut s) = (DirKeys::default(), DirKeys::default());
        if suite.tls13 {
            // A client that gave up during the handshake logged only what it had derived by
            // then (the server's handshake secret): each direction is read with what it has.
            let prot = |x: &Option<super::keylog::Secret>| {
                x.as_ref().and_then(|x| Protection::tls13(suite, x.bytes()))
            };
            c.prot = prot(&secrets.client_handshake);
            s.prot = prot(&secrets.server_handshake);
            if c.prot.is_none() && s.prot.is_none() {
                return None;
            }
            c.app_secret = secrets
                .client_traffic
                .as_ref()
                .map(|x| x.bytes().to_vec())
                .unwrap_or_default();
            s.app_secret = secrets
                .server_traffic
                .as_ref()
                .map(|x| x.bytes().to_vec())
                .unwrap_or_default();
        } else {
            let master = secrets.master.as_ref()?;
            let (cp, sp) = crypto::tls12_keys(suite, master.bytes(), &ch.random, &sh.random)?;
            c.next = Some(cp);
            s.next = Some(sp);
        }
        let dirs = if client == 0 { [c, s] } else { [s, c] };
        Some(Box::new(Keyed { suite, dirs }))
    }

    /// Keeps a record while the connection's secrets are awaited, and tries them again: found,
    /// the records kept are read in order.
    fn hold(&mut self, dir: usize, r: &Record<'_>, arrival: u64, plain: Plain<'_>) {
        let held = self.held.get_or_insert_with(Default::default);
        let room = r.body.len() == r.len && held.1 + r.len <= MAX_HELD;
        if room && self.keys.as_ref().is_some_and(|k| k.hold(r.len)) {
            held.1 += r.len;
            held.0.push(Held {
                dir,
                header: r.header,
                body: r.body.to_vec(),
                first_frame: r.first_frame,
                frame: r.frame,
                ts: r.ts,
                arrival,
            });
        } else {
            // Too much to keep: read on without keys.
            self.stop_waiting();
            return;
        }
        self.retry_keys(plain, false, r.frame);
    }

    fn stop_waiting(&mut self) {
        self.waiting = false;
        if let (Some(h), Some(k)) = (self.held.take(), &self.keys) {
            k.release(h.1);
        }
    }

    /// Looks the connection's secrets up again (`now`: reading followed key logs whatever
    /// the interval); found, the records held are decrypted.
    fn retry_keys(&mut self, plain: Plain<'_>, now: bool, frame: u64) {
        self.waiting = false;
        self.setup_keys(now, frame);
        if self.keyed.is_none() {
            return;
        }
        let held = self.held.take().map_or_else(Vec::new, |h| {
            if let Some(k) = &self.keys {
                k.release(h.1);
            }
            h.0
        });
        for mut h in held {
            let mut r = Record {
                header: h.header,
                content_type: h.header[0],
                version: u16::from_be_bytes([h.header[1], h.header[2]]),
                len: h.body.len(),
                body: &mut h.body,
                first_frame: h.first_frame,
                frame: h.frame,
                ts: h.ts,
            };
            self.open(h.dir, &mut r, h.arrival, plain);
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
                self.setup_keys(false, frame);
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

    /// The connection is over; records still held for secrets are tried once more (what
    /// they decrypt to goes to `plain`).
    pub fn close(&mut self, o: Origin, plain: Plain<'_>) {
        if self.closed {
            return;
        }
        self.closed = true;
        if self.waiting {
            self.retry_keys(plain, true, o.frame);
            self.stop_waiting();
        }
        // Secrets came only after its handshake (a pcapng's block later in the file): it had
        // none when they were needed.
        if self.decryption.is_none()
            && let (Some(sh), Some(k)) = (&self.server_hello, &self.keys)
            && k.has_any()
        {
            self.decryption = Some(Box::new(Self::undecrypted(sh)));
        }
        if let Some(dec) = &mut self.decryption
            && dec.status == DecryptStatus::Decrypted
        {
            if dec.failed_frame.is_some() {
                dec.status = DecryptStatus::Failed;
            } else if dec.stopped_frame.is_some() && dec.stopped != Some(RENEGOTIATION) {
                // The handshake was read, not what followed it.
                dec.status = DecryptStatus::NoKey;
            }
        }
        let summary = self.summary();
        let st = &mut self.stats;
        if let Some(dec) = &summary.decryption {
            *match dec.status {
                DecryptStatus::Decrypted => &mut st.decrypted,
                DecryptStatus::NoKey => &mut st.no_key,
                DecryptStatus::UnsupportedSuite => &mut st.unsupported_suite,
                DecryptStatus::Failed => &mut st.decryption_failed,
            } += 1;
            st.http2 += u64::from(dec.http2);
        }
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
            decryption: self.decryption.as_deref().cloned(),
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
