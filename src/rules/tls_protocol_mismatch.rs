//! `tls-protocol-mismatch`: one side speaks TLS and the other plain HTTP.
//!
//! - A ClientHello answered in plaintext HTTP (a registry without TLS): docker says `http:
//!   server gave HTTP response to HTTPS client`, curl `wrong version number`. When the same
//!   client then talks plain HTTP to the same server within [`FALLBACK_NS`] and is answered,
//!   this was the probe of a client configured for an insecure registry (docker, containerd
//!   and skopeo try HTTPS first): reported as info.
//! - A plaintext HTTP request answered by a TLS server's 400: nginx's "The plain HTTP request
//!   was sent to HTTPS port", Go's "Client sent an HTTP request to an HTTPS server."
//!
//! One finding per client, server and direction; repeats within a minute are counted.

use super::kit::{Bounded, exchange_evidence, request_line, secs, tls_port_answer};
use super::{Interest, Rule, RuleInfo};
use crate::capture::TimestampNs;
use crate::finding::{Evidence, Finding, FindingDraft, Party, Severity};
use crate::http::Exchange;
use crate::tls::TlsSummary;
use std::net::{IpAddr, SocketAddr};

pub static INFO: RuleInfo = RuleInfo {
    id: "tls-protocol-mismatch",
    severity: Severity::Error,
    title: "TLS spoken to a plain-HTTP port, or plain HTTP to a TLS port",
    doc: include_str!("../../docs/rules/tls-protocol-mismatch.md"),
    suppress_for_ns: Some(60_000_000_000),
    explained_by_others: false,
};

/// A client that falls back to plain HTTP does so within this long of its ClientHello.
pub const FALLBACK_NS: TimestampNs = 10_000_000_000;

/// A ClientHello answered in plaintext, waiting to see whether the client falls back.
struct Probe {
    client: IpAddr,
    server: SocketAddr,
    stream: u64,
    hello_frame: u64,
    answer_frame: u64,
    answer: String,
    sni: Option<String>,
    ts: TimestampNs,
    /// The connection's ends.
    ends: (SocketAddr, SocketAddr),
}

#[derive(Default)]
pub struct TlsProtocolMismatch {
    waiting: Bounded<Probe>,
    /// Answers without a request (the HTTP side of a ClientHello answered in plaintext) of
    /// the last few connections: stream, and the frame where Wireshark shows the answer.
    answers: Bounded<(u64, u64)>,
}

impl TlsProtocolMismatch {
    fn report(p: &Probe, fallback: Option<&Exchange>, out: &mut Vec<Finding>) {
        let (client, server) = (Party::client(p.ends.0), Party::server(p.ends.1));
        let sni = p
            .sni
            .as_deref()
            .map(|s| format!(", SNI {s}"))
            .unwrap_or_default();
        let mut evidence = vec![
            Evidence::packet(
                p.hello_frame,
                Some(p.stream),
                (client, server),
                p.ts,
                format!("TLS ClientHello{sni}"),
                "ClientHello",
            ),
            Evidence::packet(
                p.answer_frame,
                Some(p.stream),
                (server, client),
                None,
                format!(
                    "answered in plaintext: {}",
                    crate::text::shorten(&p.answer, 60)
                ),
                format!("plaintext {}", crate::text::shorten(&p.answer, 40)),
            ),
        ];
        let (severity, title, detail, remediation) = match fallback {
            Some(ex) => {
                evidence.extend(exchange_evidence(ex, "plain HTTP request", "answered"));
                (
                    Severity::Info,
                    format!(
                        "{} probed {} with TLS, was answered in plain HTTP, and fell back to plain HTTP",
                        p.client, p.server
                    ),
                    format!(
                        "{} sent a TLS ClientHello to {} (frame {}), which answered in plaintext ({}, frame {}): the server does not speak TLS on this port. The client then sent {} over plain HTTP (frame {}) and was answered: a client configured to use this registry without TLS (an insecure registry) tries HTTPS first. Nothing failed; the registry's traffic, its credentials included, travels unencrypted.",
                        p.client,
                        p.server,
                        p.hello_frame,
                        p.answer,
                        p.answer_frame,
                        ex.request
                            .as_ref()
                            .map(|m| request_line(m, 80))
                            .unwrap_or_default(),
                        ex.request.as_ref().map_or(0, |m| m.frame),
                    ),
                    "Nothing to fix for the transfer. To encrypt it, serve TLS on the registry (distribution's `http.tls`, nginx `listen ... ssl`) and remove the registry from `insecure-registries` (docker `daemon.json`) or the `http://` server in containerd's `hosts.toml`.".to_string(),
                )
            }
            None => (
                INFO.severity,
                format!(
                    "{} spoke TLS to {}, which answered in plain HTTP",
                    p.client, p.server
                ),
                format!(
                    "{} sent a TLS ClientHello to {} (frame {}); the server answered in plaintext ({}, frame {}): it serves plain HTTP on this port, not TLS. Clients fail with docker's `http: server gave HTTP response to HTTPS client`, curl's `wrong version number`; the capture shows no fallback to plain HTTP.",
                    p.client, p.server, p.hello_frame, p.answer, p.answer_frame
                ),
                format!(
                    "Either serve TLS on {} (distribution's `http.tls` with a certificate, or TLS on the proxy in front), or tell the client the registry is plain HTTP: docker `\"insecure-registries\": [\"{}\"]` in `/etc/docker/daemon.json` and restart the daemon; containerd a `hosts.toml` with `server = \"http://{}\"`; podman/skopeo `--tls-verify=false` or `insecure = true` in `registries.conf`; an `HTTPS_PROXY=https://...` pointing at a plain proxy gives the same error: use `http://`.",
                    p.server,
                    p.sni
                        .as_deref()
                        .map(|s| format!("{s}:{}", p.server.port()))
                        .unwrap_or_else(|| p.server.to_string()),
                    p.server
                ),
            ),
        };
        out.push(
            FindingDraft {
                rule: INFO.id,
                severity,
                key_frame: p.answer_frame,
                evidence,
                title,
                detail,
                remediation,
                time: secs(p.ts),
                identifier: Some(format!("tls-to-plain {} {}", p.client, p.server)),
            }
            .build(),
        );
    }
}

impl Rule for TlsProtocolMismatch {
    fn info(&self) -> &'static RuleInfo {
        &INFO
    }

    fn interest(&self) -> Interest {
        Interest::TLS
            | Interest::STATUS_4XX
            | Interest::UNANSWERED
            | Interest::EXCHANGE.when(!self.waiting.is_empty())
    }

    fn on_tls(&mut self, t: &TlsSummary, out: &mut Vec<Finding>) {
        let (Some(ch), Some((frame, line))) = (&t.client_hello, &t.plaintext) else {
            return;
        };
        if !line.starts_with("HTTP/") {
            return;
        }
        // Where Wireshark shows the answer: the HTTP message's last frame.
        let answer_frame = self
            .answers
            .iter()
            .find(|(s, _)| *s == t.stream)
            .map_or(*frame, |(_, f)| *f);
        let p = Probe {
            client: t.client.ip(),
            server: t.server,
            stream: t.stream,
            hello_frame: ch.frame,
            answer_frame,
            answer: line.clone(),
            sni: ch.sni.clone(),
            ts: ch.ts,
            ends: (t.client, t.server),
        };
        if let Some(old) = self.waiting.push(p) {
            Self::report(&old, None, out);
        }
    }

    fn on_exchange(&mut self, ex: &Exchange, out: &mut Vec<Finding>) {
        if ex.request.is_none()
            && let Some(resp) = &ex.response
        {
            let _ = self.answers.push((ex.stream, resp.frame));
            return;
        }
        // A plain HTTP exchange after a probe: the client fell back.
        if !self.waiting.is_empty()
            && ex.response.is_some()
            && let Some(req) = &ex.request
            && let Some(i) = self.waiting.iter().position(|p| {
                p.client == ex.client.ip()
                    && p.server == ex.server
                    && p.stream != ex.stream
                    && req.first_ts >= p.ts
            })
            && let Some(p) = self.waiting.remove(i)
        {
            Self::report(&p, Some(ex), out);
        }
        // A plaintext request answered by a TLS server.
        let (Some(req), Some(resp)) = (&ex.request, &ex.response) else {
            return;
        };
        let Some(who) = tls_port_answer(resp) else {
            return;
        };
        out.push(
            FindingDraft {
                rule: INFO.id,
                severity: INFO.severity,
                key_frame: resp.frame,
                evidence: exchange_evidence(ex, "plain HTTP request", "400 from a TLS port"),
                title: format!(
                    "{} sent plain HTTP to {}, a TLS port",
                    ex.client.ip(),
                    ex.server
                ),
                detail: format!(
                    "{} sent {} in plaintext to {}; {who} answered 400 (frame {}): that port expects TLS. Clients see `400 Bad Request` or an HTML page instead of the registry's answer (docker: `invalid character '<' looking for beginning of value`).",
                    ex.client,
                    request_line(req, 80),
                    ex.server,
                    resp.frame
                ),
                remediation: format!(
                    "Use `https://` for {}: the client has it as an insecure (plain HTTP) registry (docker `insecure-registries`, containerd's `hosts.toml` `server = \"http://...\"`, a `http://` URL or proxy setting) while the server serves TLS there. Remove that setting and give the client the CA if the certificate is private (`/etc/docker/certs.d/HOST:PORT/ca.crt`).",
                    ex.server
                ),
                time: secs(req.first_ts),
                identifier: Some(format!("plain-to-tls {} {}", ex.client.ip(), ex.server)),
            }
            .build(),
        );
    }

    fn next_deadline(&self) -> Option<TimestampNs> {
        self.waiting
            .iter()
            .map(|p| p.ts.saturating_add(FALLBACK_NS))
            .min()
    }

    fn on_tick(&mut self, now: TimestampNs, out: &mut Vec<Finding>) {
        while let Some(i) = self
            .waiting
            .iter()
            .position(|p| p.ts.saturating_add(FALLBACK_NS) <= now)
        {
            if let Some(p) = self.waiting.remove(i) {
                Self::report(&p, None, out);
            }
        }
    }

    fn finish(&mut self, out: &mut Vec<Finding>) {
        while let Some(p) = self.waiting.pop_front() {
            Self::report(&p, None, out);
        }
    }

    fn state_dropped(&self) -> u64 {
        self.waiting.dropped
    }
}
