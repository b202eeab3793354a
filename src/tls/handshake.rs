//! Handshake messages of one direction (RFC 8446 §4, RFC 5246 §7.4): a 4-byte header (type,
//! 24-bit length) and a body, split over records or several per record; the records' bodies
//! are put together here (tls-parser leaves that to its caller), and each complete message is
//! parsed by tls-parser (the hellos, a TLS ≤ 1.2 Certificate) and x509-parser (each
//! certificate).

use serde::Serialize;
use tls_parser::{TlsExtension, TlsMessage, TlsMessageHandshake};

/// Handshake types (RFC 8446 §4).
pub const CLIENT_HELLO: u8 = 1;
pub const SERVER_HELLO: u8 = 2;
pub const CERTIFICATE: u8 = 11;

/// A ServerHello with this random is a HelloRetryRequest (RFC 8446 §4.1.3).
const HELLO_RETRY_RANDOM: [u8; 32] = [
    0xCF, 0x21, 0xAD, 0x74, 0xE5, 0x9A, 0x61, 0x11, 0xBE, 0x1D, 0x8C, 0x02, 0x1E, 0x65, 0xB8, 0x91,
    0xC2, 0xA2, 0x11, 0x16, 0x7A, 0xBB, 0x8C, 0x5E, 0x07, 0x9E, 0x09, 0xE2, 0xC8, 0xA8, 0x33, 0x9C,
];

/// Certificates read of one chain; more are counted.
pub const MAX_CERTIFICATES: usize = 8;

/// Handshake bytes of one direction waiting for the rest of their message.
#[derive(Debug, Default)]
pub struct Messages {
    buf: Vec<u8>,
    /// The frame of the first byte of the message at the front of `buf`.
    first_frame: u64,
    /// A message longer than the limit was announced: the direction's handshake is no longer
    /// read.
    pub overflowed: bool,
    /// With [`Messages::feed_skipping`]: messages over the limit passed over, and the bytes of
    /// the current one still to pass over.
    pub skipped: u64,
    skip: usize,
}

/// A complete handshake message.
pub struct Message<'a> {
    pub kind: u8,
    /// Header and body.
    pub bytes: &'a [u8],
    pub first_frame: u64,
    pub frame: u64,
    /// Capture time of `frame`.
    pub ts: i64,
}

impl Messages {
    /// Takes the body of a handshake record (completed at `frame`, begun at `first_frame`) and
    /// gives each message it completes; at most `limit` bytes are held.
    pub fn feed(
        &mut self,
        body: &[u8],
        first_frame: u64,
        frame: u64,
        ts: i64,
        limit: usize,
        on: &mut dyn FnMut(Message<'_>),
    ) {
        if self.overflowed {
            return;
        }
        if self.buf.is_empty() {
            self.first_frame = first_frame;
        }
        self.buf.extend_from_slice(body);
        let mut at = 0;
        while let Some(&[kind, a, b, c]) = self.buf.get(at..at + 4) {
            let len = u32::from_be_bytes([0, a, b, c]) as usize;
            if len + 4 > limit {
                self.overflowed = true;
                self.buf = Vec::new();
                return;
            }
            let Some(bytes) = self.buf.get(at..at + 4 + len) else {
                break;
            };
            on(Message {
                kind,
                bytes,
                first_frame: self.first_frame,
                frame,
                ts,
            });
            at += 4 + len;
            // The next message starts in this record.
            self.first_frame = frame;
        }
        self.buf.drain(..at);
        if self.buf.len() > limit {
            self.overflowed = true;
            self.buf = Vec::new();
        }
    }

    /// As [`Messages::feed`], but a message over the limit is passed over (counted in
    /// `skipped`) and the messages after it are read: decrypted handshakes must not lose
    /// their Finished or KeyUpdate to a large certificate chain.
    pub fn feed_skipping(
        &mut self,
        mut body: &[u8],
        first_frame: u64,
        frame: u64,
        ts: i64,
        limit: usize,
        on: &mut dyn FnMut(Message<'_>),
    ) {
        let mut start = first_frame;
        while !body.is_empty() {
            if self.skip > 0 {
                let n = self.skip.min(body.len());
                self.skip -= n;
                body = body.get(n..).unwrap_or_default();
                start = frame;
                continue;
            }
            if self.buf.is_empty() {
                self.first_frame = start;
            }
            // The header first (at most 4 bytes held).
            if self.buf.len() < 4 {
                let take = (4 - self.buf.len()).min(body.len());
                self.buf
                    .extend_from_slice(body.get(..take).unwrap_or_default());
                body = body.get(take..).unwrap_or_default();
                if self.buf.len() < 4 {
                    return;
                }
            }
            let &[kind, a, b, c, ..] = self.buf.as_slice() else {
                return;
            };
            let len = u32::from_be_bytes([0, a, b, c]) as usize;
            if len + 4 > limit {
                self.skipped += 1;
                self.skip = len;
                self.buf.clear();
                continue;
            }
            let take = (4 + len - self.buf.len()).min(body.len());
            self.buf
                .extend_from_slice(body.get(..take).unwrap_or_default());
            body = body.get(take..).unwrap_or_default();
            if self.buf.len() == 4 + len {
                on(Message {
                    kind,
                    bytes: &self.buf,
                    first_frame: self.first_frame,
                    frame,
                    ts,
                });
                self.buf.clear();
                start = frame;
            }
        }
    }

    /// Bytes of a message begun and not finished.
    pub fn pending(&self) -> bool {
        !self.buf.is_empty()
    }
}

/// What a ClientHello offers.
#[derive(Clone, Debug, Default, Serialize, PartialEq, Eq)]
pub struct ClientHello {
    pub frame: u64,
    /// Capture time (ns since the epoch) of its frame.
    pub ts: i64,
    /// Server Name Indication, as sent (escaped where shown).
    pub sni: Option<String>,
    /// ALPN protocols offered.
    pub alpn: Vec<String>,
    /// Versions offered: `supported_versions` when present (GREASE left out), else the
    /// hello's own version.
    pub versions: Vec<u16>,
    pub cipher_suites: usize,
    /// Its random: the key log's index (not shown).
    #[serde(skip)]
    pub random: [u8; 32],
}

/// What a ServerHello chose.
#[derive(Clone, Debug, Default, Serialize, PartialEq, Eq)]
pub struct ServerHello {
    pub frame: u64,
    /// Capture time (ns since the epoch) of its frame.
    pub ts: i64,
    /// The version chosen: `supported_versions` when present (TLS 1.3), else the hello's own.
    pub version: u16,
    pub cipher_suite: u16,
    /// ALPN protocol chosen (TLS ≤ 1.2; TLS 1.3 sends it encrypted).
    pub alpn: Option<String>,
    /// Its random (TLS 1.2's key block is made from it; not shown).
    #[serde(skip)]
    pub random: [u8; 32],
}

/// One certificate of a chain.
#[derive(Clone, Debug, Default, Serialize, PartialEq, Eq)]
pub struct CertInfo {
    pub subject: String,
    pub issuer: String,
    /// DNS names and IP addresses of its subjectAltName.
    pub sans: Vec<String>,
    /// Validity, seconds since the epoch.
    pub not_before: i64,
    pub not_after: i64,
    /// Subject and issuer are the same name.
    pub self_issued: bool,
}

/// A parsed handshake message of interest.
pub enum Parsed {
    ClientHello(ClientHello),
    ServerHello(ServerHello),
    HelloRetryRequest,
    Certificates(Vec<CertInfo>, usize),
    /// Anything else, or a message tls-parser refused.
    Other,
    Malformed,
}

/// Text from the handshake, kept as given where it is UTF-8 and escaped where it is not.
fn text(b: &[u8]) -> String {
    crate::text::lossless(b)
}

fn is_grease(v: u16) -> bool {
    v & 0x0f0f == 0x0a0a && (v >> 8) == (v & 0xff)
}

/// The extensions of a hello the summary reads (server_name 0, ALPN 16, supported_versions 43),
/// each whole (type, length, data) for tls-parser; the others are passed over unparsed, and an
/// extension that runs past the list ends it.
fn kept_extensions(mut rest: &[u8]) -> impl Iterator<Item = &[u8]> {
    std::iter::from_fn(move || {
        loop {
            let &[t0, t1, l0, l1, ..] = rest else {
                return None;
            };
            let len = 4 + usize::from(u16::from_be_bytes([l0, l1]));
            let whole = rest.get(..len)?;
            rest = rest.get(len..).unwrap_or_default();
            if matches!(u16::from_be_bytes([t0, t1]), 0 | 16 | 43) {
                return Some(whole);
            }
        }
    })
}

/// Parses a complete handshake message (its header included).
pub fn parse(m: &Message<'_>) -> Parsed {
    if !matches!(m.kind, CLIENT_HELLO | SERVER_HELLO | CERTIFICATE) {
        return Parsed::Other;
    }
    let Ok((_, TlsMessage::Handshake(msg))) = tls_parser::parse_tls_message_handshake(m.bytes)
    else {
        return Parsed::Malformed;
    };
    match msg {
        TlsMessageHandshake::ClientHello(ch) => {
            let mut hello = ClientHello {
                frame: m.frame,
                ts: m.ts,
                cipher_suites: ch.ciphers.len(),
                random: ch.random.try_into().unwrap_or([0; 32]),
                ..ClientHello::default()
            };
            let exts = kept_extensions(ch.ext.unwrap_or_default())
                .filter_map(|e| tls_parser::parse_tls_client_hello_extension(e).ok())
                .map(|(_, e)| e);
            for e in exts {
                match e {
                    TlsExtension::SNI(names) => {
                        hello.sni = names.first().map(|(_, n)| text(n));
                    }
                    TlsExtension::ALPN(protos) => {
                        hello.alpn = protos.iter().map(|p| text(p)).collect();
                    }
                    TlsExtension::SupportedVersions(ref vs) => {
                        hello.versions =
                            vs.iter().map(|v| v.0).filter(|v| !is_grease(*v)).collect();
                    }
                    _ => {}
                }
            }
            if hello.versions.is_empty() {
                hello.versions.push(ch.version.0);
            }
            Parsed::ClientHello(hello)
        }
        TlsMessageHandshake::ServerHello(sh) => {
            if sh.random == HELLO_RETRY_RANDOM {
                return Parsed::HelloRetryRequest;
            }
            let mut hello = ServerHello {
                frame: m.frame,
                ts: m.ts,
                version: sh.version.0,
                cipher_suite: sh.cipher.0,
                alpn: None,
                random: sh.random.try_into().unwrap_or([0; 32]),
            };
            let exts = kept_extensions(sh.ext.unwrap_or_default())
                .filter_map(|e| tls_parser::parse_tls_server_hello_extension(e).ok())
                .map(|(_, e)| e);
            for e in exts {
                match e {
                    TlsExtension::SupportedVersions(vs) => {
                        if let Some(v) = vs.first() {
                            hello.version = v.0;
                        }
                    }
                    TlsExtension::ALPN(protos) => {
                        hello.alpn = protos.first().map(|p| text(p));
                    }
                    _ => {}
                }
            }
            Parsed::ServerHello(hello)
        }
        TlsMessageHandshake::HelloRetryRequest(_) => Parsed::HelloRetryRequest,
        TlsMessageHandshake::Certificate(c) => {
            let certs = c
                .cert_chain
                .iter()
                .take(MAX_CERTIFICATES)
                .filter_map(|raw| certificate(raw.data))
                .collect();
            Parsed::Certificates(certs, c.cert_chain.len())
        }
        _ => Parsed::Other,
    }
}

/// The ALPN protocol a TLS 1.3 EncryptedExtensions message (its body, after the 4-byte header)
/// names (RFC 8446 §4.3.1, RFC 7301 §3.1).
pub fn encrypted_extensions_alpn(body: &[u8]) -> Option<String> {
    let (&[l0, l1], rest) = body.split_first_chunk::<2>()?;
    let list = rest.get(..usize::from(u16::from_be_bytes([l0, l1])))?;
    let mut all = kept_extensions(list);
    all.find_map(|e| match e {
        [0, 16, _, _, _, _, rest @ ..] => {
            let (&len, proto) = rest.split_first()?;
            proto.get(..usize::from(len)).map(text)
        }
        _ => None,
    })
}

/// The chain of a TLS 1.3 Certificate message (its body, after the 4-byte header):
/// `context<0..255> ‖ list<u24>` of `cert<u24> ‖ extensions<u16>` (RFC 8446 §4.4.2); the
/// certificates read (at most [`MAX_CERTIFICATES`]) and how many the chain holds.
pub fn certificates_tls13(body: &[u8]) -> Option<(Vec<CertInfo>, usize)> {
    let (&ctx, rest) = body.split_first()?;
    let rest = rest.get(usize::from(ctx)..)?;
    let (&[a, b, c], rest) = rest.split_first_chunk::<3>()?;
    let mut list = rest.get(..u32::from_be_bytes([0, a, b, c]) as usize)?;
    let mut certs = Vec::new();
    let mut total = 0;
    while let Some((&[a, b, c], rest)) = list.split_first_chunk::<3>() {
        let len = u32::from_be_bytes([0, a, b, c]) as usize;
        let der = rest.get(..len)?;
        let (&[e0, e1], after) = rest.get(len..)?.split_first_chunk::<2>()?;
        list = after.get(usize::from(u16::from_be_bytes([e0, e1]))..)?;
        total += 1;
        if certs.len() < MAX_CERTIFICATES
            && let Some(c) = certificate(der)
        {
            certs.push(c);
        }
    }
    Some((certs, total))
}

/// The names and validity of a DER certificate (`None` when x509-parser refuses it).
pub fn certificate(der: &[u8]) -> Option<CertInfo> {
    let (_, cert) = x509_parser::parse_x509_certificate(der).ok()?;
    let mut sans = Vec::new();
    if let Ok(Some(san)) = cert.subject_alternative_name() {
        for n in &san.value.general_names {
            match n {
                x509_parser::extensions::GeneralName::DNSName(d) => sans.push(text(d.as_bytes())),
                x509_parser::extensions::GeneralName::IPAddress(ip) => {
                    if let Ok(b) = <[u8; 4]>::try_from(*ip) {
                        sans.push(std::net::Ipv4Addr::from(b).to_string());
                    } else if let Ok(b) = <[u8; 16]>::try_from(*ip) {
                        sans.push(std::net::Ipv6Addr::from(b).to_string());
                    }
                }
                _ => {}
            }
        }
    }
    let subject = text(cert.subject().to_string().as_bytes());
    let issuer = text(cert.issuer().to_string().as_bytes());
    Some(CertInfo {
        self_issued: cert.subject().as_raw() == cert.issuer().as_raw(),
        subject,
        issuer,
        sans,
        not_before: cert.validity().not_before.timestamp(),
        not_after: cert.validity().not_after.timestamp(),
    })
}

/// `TLS 1.3`, `TLS 1.2`, ... (`0x7f1c` for what has no name).
pub fn version_name(v: u16) -> String {
    match v {
        0x0300 => "SSL 3.0".into(),
        0x0301 => "TLS 1.0".into(),
        0x0302 => "TLS 1.1".into(),
        0x0303 => "TLS 1.2".into(),
        0x0304 => "TLS 1.3".into(),
        _ => format!("0x{v:04x}"),
    }
}

/// An alert description's name (RFC 8446 §6), or its number.
pub fn alert_name(d: u8) -> String {
    let name = match d {
        0 => "close_notify",
        10 => "unexpected_message",
        20 => "bad_record_mac",
        22 => "record_overflow",
        40 => "handshake_failure",
        42 => "bad_certificate",
        43 => "unsupported_certificate",
        44 => "certificate_revoked",
        45 => "certificate_expired",
        46 => "certificate_unknown",
        47 => "illegal_parameter",
        48 => "unknown_ca",
        49 => "access_denied",
        50 => "decode_error",
        51 => "decrypt_error",
        70 => "protocol_version",
        71 => "insufficient_security",
        80 => "internal_error",
        86 => "inappropriate_fallback",
        90 => "user_canceled",
        109 => "missing_extension",
        110 => "unsupported_extension",
        112 => "unrecognized_name",
        113 => "bad_certificate_status_response",
        115 => "unknown_psk_identity",
        116 => "certificate_required",
        120 => "no_application_protocol",
        _ => return format!("alert {d}"),
    };
    name.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn messages(records: &[&[u8]], limit: usize) -> (Vec<(u8, usize, u64, u64)>, bool) {
        let mut m = Messages::default();
        let mut out = Vec::new();
        for (i, r) in records.iter().enumerate() {
            let f = i as u64 + 1;
            m.feed(r, f, f, 0, limit, &mut |msg| {
                out.push((msg.kind, msg.bytes.len(), msg.first_frame, msg.frame))
            });
        }
        (out, m.overflowed)
    }

    #[test]
    fn messages_across_records_and_several_per_record() {
        let (out, over) = messages(
            &[&[2, 0, 0, 1, 9, 11, 0, 0, 3, 1], &[2, 3, 14, 0, 0, 0]],
            100,
        );
        assert!(!over);
        assert_eq!(out, vec![(2, 5, 1, 1), (11, 7, 1, 2), (14, 4, 2, 2)]);
        let (out, over) = messages(&[&[11, 0, 1, 0]], 100);
        assert!(over && out.is_empty());
    }

    #[test]
    fn an_oversized_message_is_passed_over_when_skipping() {
        // A 20-byte certificate over a 16-byte limit, split over records, then a Finished.
        let mut m = Messages::default();
        let mut out = Vec::new();
        let recs: [&[u8]; 3] = [&[11, 0, 0, 20, 1, 2], &[0; 18], &[20, 0, 0, 1, 9]];
        for (i, r) in recs.iter().enumerate() {
            let f = i as u64 + 1;
            m.feed_skipping(r, f, f, 0, 16, &mut |msg| {
                out.push((msg.kind, msg.bytes.len(), msg.first_frame, msg.frame))
            });
        }
        assert_eq!(out, vec![(20, 5, 3, 3)]);
        assert_eq!(m.skipped, 1);
        assert!(!m.pending());
    }

    #[test]
    fn grease_versions_are_left_out() {
        assert!(is_grease(0x0a0a) && is_grease(0xfafa) && !is_grease(0x0304));
    }
}
