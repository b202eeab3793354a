//! `tls-handshake-rejected`: a TLS handshake one side aborted: a fatal alert, the client's
//! encrypted alert right after the server's flight (TLS 1.3), a close after the server's
//! flight, or a handshake completed and closed at once before any request (curl on a name
//! mismatch). The cause is named from what the packets support: the alert's description and
//! who sent it, and in TLS ≤ 1.2 the certificate itself (its issuer, validity against the
//! capture's time, its names against the SNI). TLS 1.3 hides the certificate: the finding says
//! what can and cannot be seen, and how to see more.
//!
//! Client signatures (measured; `TLS-NOTES`): Go (docker, containerd, skopeo) sends
//! `bad_certificate` for every verification failure, encrypted in TLS 1.3 (a 19-byte record);
//! OpenSSL clients send `unknown_ca` / `certificate_expired` in plaintext even in TLS 1.3;
//! Java an encrypted `certificate_unknown` (35 bytes); Node only closes. One finding per client,
//! server and cause; repeats within a minute are counted.

use super::kit::secs;
use super::{Interest, Rule, RuleInfo};
use crate::finding::{Evidence, Finding, FindingDraft, Party, Severity};
use crate::text::shell_quote;
use crate::tls::{CertInfo, Outcome, TlsSummary, alert_name, version_name};

pub static INFO: RuleInfo = RuleInfo {
    id: "tls-handshake-rejected",
    severity: Severity::Error,
    title: "TLS handshake rejected: the client refused the server's certificate, or the sides did not agree",
    doc: include_str!("../../docs/rules/tls-handshake-rejected.md"),
    suppress_for_ns: Some(60_000_000_000),
    explained_by_others: false,
};

/// A handshake completed and closed within this long of the ServerHello, before any
/// application data, is a rejection (curl checks the name after the handshake); a connection
/// opened and left unused closes later.
const AT_ONCE_NS: i64 = 1_000_000_000;

#[derive(Default)]
pub struct TlsHandshakeRejected;

/// What the packets support as the cause.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Cause {
    Untrusted,
    Expired,
    NotYetValid,
    NameMismatch,
    Disagreement,
    /// TLS 1.3: the certificate is encrypted, and the client's alert is too, or says nothing
    /// more than "bad certificate".
    Hidden,
    /// The server ended it with no reason given.
    ServerClosed,
    Unknown,
}

/// Whether certificate name `pattern` (a SAN, `*.` wildcards in the leftmost label) covers
/// `host` (RFC 6125 §6.4.3).
fn name_matches(pattern: &str, host: &str) -> bool {
    let (p, h) = (pattern.to_ascii_lowercase(), host.to_ascii_lowercase());
    let h = h.trim_end_matches('.');
    match p.strip_prefix("*.") {
        Some(rest) => h
            .split_once('.')
            .is_some_and(|(first, tail)| !first.is_empty() && tail == rest),
        None => p.trim_end_matches('.') == h,
    }
}

/// What a client that refused the certificate refused, at capture time `now` (seconds), having
/// asked for `host` (the SNI, else the server's address): its validity, its names, else its
/// issuer.
fn certificate_problem(leaf: &CertInfo, chain: &[CertInfo], host: &str, now: i64) -> Option<Cause> {
    if now > leaf.not_after {
        return Some(Cause::Expired);
    }
    if now < leaf.not_before {
        return Some(Cause::NotYetValid);
    }
    if !leaf.sans.is_empty() && !leaf.sans.iter().any(|n| name_matches(n, host)) {
        return Some(Cause::NameMismatch);
    }
    if leaf.sans.is_empty() {
        // Go ignores the subject CN since 1.15; a certificate without SANs fails everywhere.
        return Some(Cause::NameMismatch);
    }
    // In date and naming the host: what the client refused is its issuer (a private CA, a
    // self-signed certificate, or a chain sent without its intermediates).
    let _ = chain;
    Some(Cause::Untrusted)
}

fn cert_line(c: &CertInfo) -> String {
    format!(
        "subject {}, issuer {}{}, valid {} to {}, names {}",
        c.subject,
        c.issuer,
        if c.self_issued { " (self-issued)" } else { "" },
        date(c.not_before),
        date(c.not_after),
        if c.sans.is_empty() {
            "none (no subjectAltName)".to_string()
        } else {
            c.sans.join(", ")
        }
    )
}

/// `2026-12-05` for seconds since the epoch.
fn date(secs: i64) -> String {
    let (y, m, d) = super::kit::time::civil_from_days(secs.div_euclid(86_400));
    format!("{y:04}-{m:02}-{d:02}")
}

impl TlsHandshakeRejected {
    /// The frame and words for how the handshake ended, who ended it, and the alert if any.
    /// (key frame, how it ended, the alert's description, ended by the client, the key
    /// frame's evidence label).
    fn ending(t: &TlsSummary) -> Option<(u64, String, Option<u8>, bool, String)> {
        // An encrypted alert read without keys is taken for fatal; decrypted, its level says.
        let fatal = t
            .alerts
            .iter()
            .find(|a| a.level == Some(2) || (a.encrypted && a.from_client && a.level.is_none()));
        if let Some(a) = fatal {
            let who = if a.from_client { "client" } else { "server" };
            return Some(match a.description {
                Some(d) => (
                    a.frame,
                    format!("the {who} sent a fatal alert, {} ({d})", alert_name(d)),
                    Some(d),
                    a.from_client,
                    format!("TLS alert {} from the {who}", alert_name(d)),
                ),
                None => (
                    a.frame,
                    format!("the {who} sent an encrypted alert"),
                    None,
                    a.from_client,
                    format!("TLS encrypted alert from the {who}"),
                ),
            });
        }
        let frame = t.outcome_frame?;
        let tls13 = t.server_hello.as_ref().is_some_and(|h| h.version >= 0x0304);
        let c = &t.client_side;
        Some(match t.outcome {
            Outcome::RejectedByClient
                if tls13
                    && c.application_records == 1
                    && c.first_encrypted_sizes.first().is_some_and(|&n| n <= 35) =>
            {
                let n = c.first_encrypted_sizes.first().copied().unwrap_or(0);
                let who = match n {
                    19 => " (19 bytes: the size of Go's encrypted bad_certificate, as docker, containerd and skopeo send for every certificate they refuse)",
                    35 => " (35 bytes: the size of Java's encrypted certificate_unknown)",
                    _ => "",
                };
                (
                    frame,
                    format!("the client answered the server's flight with one small encrypted record, an alert{who}, and closed"),
                    None,
                    true,
                    format!("TLS encrypted alert ({n} bytes) from the client"),
                )
            }
            Outcome::RejectedByClient => (
                frame,
                "the client closed the connection after the server's flight, without finishing the handshake (Node, and some clients, give no alert)".to_string(),
                None,
                true,
                "FIN from the client after the server's flight".to_string(),
            ),
            Outcome::RejectedByServer => (
                frame,
                "the server closed the connection after the ClientHello, without an alert".to_string(),
                None,
                false,
                "FIN from the server after the ClientHello".to_string(),
            ),
            Outcome::HandshakeOnly => (
                // TLS 1.3: the client's encrypted close_notify after its Finished, when kept.
                c.first_encrypted_sizes
                    .iter()
                    .zip(&c.first_encrypted_frames)
                    .skip(1)
                    .find(|(n, _)| **n == crate::tls::conn::ENCRYPTED_ALERT_LEN)
                    .map_or(frame, |(_, f)| *f),
                "the handshake completed and the client closed the connection at once, before sending any request (curl checks the certificate's name only after the handshake)".to_string(),
                None,
                true,
                "TLS close from the client right after the handshake".to_string(),
            ),
            _ => return None,
        })
    }
}

impl Rule for TlsHandshakeRejected {
    fn info(&self) -> &'static RuleInfo {
        &INFO
    }

    fn interest(&self) -> Interest {
        Interest::TLS
    }

    fn on_tls(&mut self, t: &TlsSummary, out: &mut Vec<Finding>) {
        let (Some(ch), Some(sh)) = (&t.client_hello, &t.server_hello) else {
            // No ServerHello: a server that refused the hello with an alert is still one.
            if let (Some(ch), Outcome::RejectedByServer) = (&t.client_hello, t.outcome)
                && t.alerts
                    .iter()
                    .any(|a| !a.from_client && a.level == Some(2))
            {
                self.report(t, ch, None, out);
            }
            return;
        };
        let alert = t
            .alerts
            .iter()
            .any(|a| a.level == Some(2) || (a.encrypted && a.from_client && a.level.is_none()));
        let tls13 = sh.version >= 0x0304;
        let c = &t.client_side;
        let closed = c.fin_ts.or(c.last_record_ts).unwrap_or(i64::MAX);
        match t.outcome {
            // Ended with an alert, or in TLS 1.3 with the client's small encrypted record.
            Outcome::RejectedByClient | Outcome::RejectedByServer if alert => {}
            Outcome::RejectedByClient if tls13 && c.application_records == 1 => {}
            // A bare close right after the server's flight: TLS 1.3 clients that give no
            // alert (Node). In TLS 1.2 clients that refuse say so in plaintext; a bare close
            // there is a connection dropped for another reason (a race lost, a cancelled
            // request) and is not reported.
            Outcome::RejectedByClient if tls13 && closed.saturating_sub(sh.ts) <= AT_ONCE_NS => {}
            Outcome::HandshakeOnly => {
                if closed.saturating_sub(sh.ts) > AT_ONCE_NS {
                    return;
                }
            }
            _ => return,
        }
        self.report(t, ch, Some(sh), out);
    }
}

impl TlsHandshakeRejected {
    fn report(
        &mut self,
        t: &TlsSummary,
        ch: &crate::tls::ClientHello,
        sh: Option<&crate::tls::ServerHello>,
        out: &mut Vec<Finding>,
    ) {
        let Some((key, how, alert, by_client, label)) = Self::ending(t) else {
            return;
        };
        let host = ch.sni.clone().unwrap_or_else(|| t.server.ip().to_string());
        let now = ch.ts / 1_000_000_000;
        let tls13 = sh.is_some_and(|h| h.version >= 0x0304);
        let cert_cause = t
            .certificates
            .first()
            .and_then(|leaf| certificate_problem(leaf, &t.certificates, &host, now));
        let cause = match (alert, by_client) {
            (Some(45), true) => Cause::Expired,
            (Some(48), true) => Cause::Untrusted,
            (Some(40 | 70 | 71 | 47 | 109 | 110 | 120), false) => Cause::Disagreement,
            (Some(_), true) | (None, true) => {
                cert_cause.unwrap_or(if tls13 { Cause::Hidden } else { Cause::Unknown })
            }
            (None, false) => Cause::ServerClosed,
            (Some(_), false) => Cause::Disagreement,
        };
        // What the client offered and the server chose.
        let offered: Vec<String> = ch.versions.iter().map(|&v| version_name(v)).collect();
        let chosen = sh.map(|h| version_name(h.version));
        let mut detail = format!(
            "{} opened a TLS handshake with {} (SNI {}, offering {}){}; {how} (frame {key}).",
            t.client,
            t.server,
            ch.sni
                .as_deref()
                .unwrap_or("none: the client connected by address"),
            offered.join(", "),
            chosen
                .map(|v| format!(", the server chose {v}"))
                .unwrap_or_default(),
        );
        if let Some(leaf) = t.certificates.first() {
            detail.push_str(&format!(
                " The server's certificate (frame {}): {}",
                t.certificate_frame.unwrap_or(0),
                cert_line(leaf)
            ));
            if t.certificates.len() > 1 {
                detail.push_str(&format!(
                    "; {} more in the chain, the last issued by {}",
                    t.certificates.len() - 1,
                    t.certificates
                        .last()
                        .map(|c| c.issuer.as_str())
                        .unwrap_or("")
                ));
            }
            detail.push('.');
        }
        let hostport = format!("{host}:{}", t.server.port());
        let see = format!(
            "`openssl s_client -connect {}:{} -servername {} -showcerts </dev/null | openssl x509 -noout -subject -issuer -dates -ext subjectAltName`",
            t.server.ip(),
            t.server.port(),
            shell_quote(&host)
        );
        let (what, remediation) = match cause {
            Cause::Untrusted => (
                "the client does not trust the certificate's issuer (a private CA or a self-signed certificate)".to_string(),
                format!(
                    "Give the client the CA that issued the certificate: docker `/etc/docker/certs.d/{hostport}/ca.crt`; containerd a `hosts.toml` with `ca = \"...\"` under `/etc/containerd/certs.d/{hostport}/`; podman/skopeo `/etc/containers/certs.d/{hostport}/ca.crt` or `--cert-dir`; or the system store (`update-ca-certificates`), then restart the daemon. A certificate from a public CA may fail the same way when the server sends the leaf without its intermediates: send the full chain (nginx `ssl_certificate` with the chain appended). Verify: {see}."
                ),
            ),
            Cause::Expired => (
                "the certificate has expired".to_string(),
                format!("Renew the server's certificate (and reload the server: nginx, the ingress, Harbor's `harbor.yml` certificate, cert-manager's Certificate), and check the server's clock. Verify: {see}."),
            ),
            Cause::NotYetValid => (
                "the certificate is not valid yet (the client's clock, or the server's certificate dated in the future)".to_string(),
                format!("Check the client's clock (NTP/chrony) and the certificate's notBefore. Verify: {see}."),
            ),
            Cause::NameMismatch => (
                format!("the certificate does not name {host}"),
                format!(
                    "Issue a certificate whose subjectAltName includes {host} (Go clients ignore the subject CN; an address needs an IP SAN), or make clients use a name the certificate has (the registry's `external_url`, the realm, the image reference). A certificate named `ingress.local` is ingress-nginx's default: no Ingress rule matched the SNI. Verify: {see}."
                ),
            ),
            Cause::Disagreement => (
                "the two sides share no protocol version or cipher suite the server accepts".to_string(),
                format!(
                    "The client offered {}; align the server's accepted versions and ciphers (nginx `ssl_protocols`/`ssl_ciphers`, a Go server's `MinVersion`) with what the clients send, or update the client. Check with `openssl s_client -connect {}:{} -tls1_2` and `-tls1_3`.",
                    offered.join(", "),
                    t.server.ip(),
                    t.server.port()
                ),
            ),
            Cause::Hidden => (
                "TLS 1.3 encrypts the certificate and this alert: the packets cannot tell whether the issuer is untrusted, the certificate expired or its name does not match".to_string(),
                format!(
                    "See the certificate the server sends to this name: {see}; then fix what is wrong as for each cause (the CA in `/etc/docker/certs.d/{hostport}/ca.crt` or containerd's `hosts.toml`; a renewed certificate; a subjectAltName for {host}). A capture with the client's TLS key log (SSLKEYLOGFILE) shows the certificate itself."
                ),
            ),
            Cause::ServerClosed => (
                "the server refused the handshake without saying why (often: no certificate for this SNI, or a TLS policy)".to_string(),
                format!("Check the server's error log for this client and SNI, and its TLS settings for the name {host}. Verify: {see}."),
            ),
            Cause::Unknown => (
                "the client refused the server's certificate".to_string(),
                format!("See the certificate and what the client expects: {see}."),
            ),
        };
        detail.push_str(&format!(" Cause: {what}."));
        let (client, server) = (Party::client(t.client), Party::server(t.server));
        let mut evidence = vec![Evidence::packet(
            ch.frame,
            Some(t.stream),
            (client, server),
            ch.ts,
            format!(
                "TLS ClientHello, SNI {}",
                ch.sni.as_deref().unwrap_or("none")
            ),
            format!(
                "ClientHello{}",
                ch.sni
                    .as_deref()
                    .map(|s| format!(" (SNI {s})"))
                    .unwrap_or_default()
            ),
        )];
        if let Some(h) = sh {
            evidence.push(Evidence::packet(
                h.frame,
                Some(t.stream),
                (server, client),
                h.ts,
                format!("TLS ServerHello, {}", version_name(h.version)),
                format!("ServerHello ({})", version_name(h.version)),
            ));
        }
        if let (Some(f), Some(leaf)) = (t.certificate_frame, t.certificates.first()) {
            evidence.push(Evidence::packet(
                f,
                Some(t.stream),
                (server, client),
                None,
                format!(
                    "TLS Certificate: {}",
                    crate::text::shorten(&leaf.subject, 60)
                ),
                format!("Certificate {}", crate::text::shorten(&leaf.subject, 40)),
            ));
        }
        let alert_ts = t.alerts.iter().find(|a| a.frame == key).map(|a| a.ts);
        let short = label
            .strip_prefix("TLS ")
            .unwrap_or(&label)
            .replace(" from the client", "")
            .replace(" from the server", "");
        evidence.push(Evidence::packet(
            key,
            Some(t.stream),
            if by_client {
                (client, server)
            } else {
                (server, client)
            },
            alert_ts,
            label,
            short,
        ));
        evidence.sort_by_key(|e| e.frame);
        evidence.dedup_by_key(|e| e.frame);
        out.push(
            FindingDraft {
                rule: INFO.id,
                severity: INFO.severity,
                key_frame: key,
                evidence,
                title: format!(
                    "TLS handshake from {} to {} ({}) rejected: {}",
                    t.client.ip(),
                    t.server,
                    crate::text::shorten(&host, 60),
                    match cause {
                        Cause::Untrusted => "untrusted certificate issuer",
                        Cause::Expired => "certificate expired",
                        Cause::NotYetValid => "certificate not yet valid",
                        Cause::NameMismatch => "certificate name mismatch",
                        Cause::Disagreement => "no common protocol or cipher",
                        Cause::Hidden => "certificate refused (TLS 1.3 hides which check failed)",
                        Cause::ServerClosed => "the server closed it",
                        Cause::Unknown => "certificate refused",
                    }
                ),
                detail,
                remediation,
                time: secs(ch.ts),
                identifier: Some(format!("{} {} {cause:?}", t.client.ip(), t.server)),
            }
            .build(),
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_wildcards() {
        assert!(name_matches("registry.lab", "Registry.LAB"));
        assert!(name_matches("*.lab", "registry.lab"));
        assert!(!name_matches("*.lab", "a.registry.lab"));
        assert!(!name_matches("*.lab", "lab"));
        assert!(!name_matches("other.lab", "registry.lab"));
    }

    #[test]
    fn dates() {
        assert_eq!(date(0), "1970-01-01");
        assert_eq!(date(1_796_423_247), "2026-12-04");
        assert_eq!(date(951_782_400), "2000-02-29");
    }
}
