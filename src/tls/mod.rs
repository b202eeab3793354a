//! TLS without keys: each direction's records and handshake messages, the facts a handshake
//! shows in plaintext (the hellos, a TLS ≤ 1.2 certificate chain, alerts), and how it went.
//! A connection comes here when a direction's first bytes are a TLS handshake record (the
//! application layer's probe, `crate::app`), on any port.
//!
//! record.rs (records across segments) → handshake.rs (messages across records; the hellos and
//! certificates parsed by tls-parser and x509-parser) → conn.rs (a connection's state, its
//! summary and outcome when it ends).

pub mod conn;
pub mod crypto;
pub mod handshake;
pub mod keylog;
pub mod keys;
pub mod record;

pub use conn::{Alert, DecryptStatus, Decryption, Outcome, Plain, Side, TlsConn, TlsSummary};
pub use handshake::{CertInfo, ClientHello, ServerHello, alert_name, version_name};
pub use keys::KeyStore;

use serde::Serialize;

/// Bounds of the TLS layer.
#[derive(Clone, Copy, Debug)]
pub struct Limits {
    /// Bytes of handshake messages held per direction while a message is put together (a
    /// certificate chain is the largest: a few KiB, rarely over 16 KiB).
    pub max_handshake: usize,
}

impl Default for Limits {
    fn default() -> Limits {
        Limits {
            max_handshake: 64 * 1024,
        }
    }
}

/// The TLS layer's counters.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct TlsStats {
    /// Connections read as TLS (their first bytes a TLS handshake record), and how their
    /// handshakes went ([`Outcome`]).
    pub connections: u64,
    pub established: u64,
    pub rejected_by_client: u64,
    pub rejected_by_server: u64,
    pub handshake_only: u64,
    pub not_tls: u64,
    pub cut: u64,
    /// Directions whose bytes stopped being TLS records (a header that is not one).
    pub not_records: u64,
    /// Directions whose handshake was no longer read: a message over the limit.
    pub handshake_limit_hits: u64,
    /// Hellos or certificates messages that did not parse.
    pub malformed_handshakes: u64,
    /// Directions that lost bytes to the capture, so records could not be followed.
    pub gaps: u64,
    /// With secrets (a key log, a pcapng's): connections whose handshake reached a
    /// ServerHello, by how decrypting them went; and those that carried HTTP/2 (counted, not
    /// parsed).
    pub decrypted: u64,
    pub no_key: u64,
    pub unsupported_suite: u64,
    pub decryption_failed: u64,
    pub http2: u64,
}

impl TlsStats {
    pub fn add(&mut self, o: &TlsStats) {
        self.connections += o.connections;
        self.established += o.established;
        self.rejected_by_client += o.rejected_by_client;
        self.rejected_by_server += o.rejected_by_server;
        self.handshake_only += o.handshake_only;
        self.not_tls += o.not_tls;
        self.cut += o.cut;
        self.not_records += o.not_records;
        self.handshake_limit_hits += o.handshake_limit_hits;
        self.malformed_handshakes += o.malformed_handshakes;
        self.gaps += o.gaps;
        self.decrypted += o.decrypted;
        self.no_key += o.no_key;
        self.unsupported_suite += o.unsupported_suite;
        self.decryption_failed += o.decryption_failed;
        self.http2 += o.http2;
    }
}
