//! `registry-api-version-missing`: the registry's API version check, `GET /v2/`, answered 200 or
//! 401 without `Docker-Distribution-Api-Version: registry/2.0`. Registries always send it (the
//! distribution spec); a proxy in front of one drops it (`proxy_hide_header`), or answers the 401
//! itself without it (a `WWW-Authenticate` added at the proxy, an `add_header` without
//! `always`, which nginx leaves off 4xx answers). Clients that check it take the endpoint for
//! something that is not a registry.

use super::kit::{Repeats, exchange_evidence, request_line, secs, target_path};
use super::{Interest, Rule, RuleInfo};
use crate::finding::{Finding, FindingDraft, Severity};
use crate::http::Exchange;
use std::net::SocketAddr;

pub static INFO: RuleInfo = RuleInfo {
    id: "registry-api-version-missing",
    severity: Severity::Warning,
    title: "The registry's /v2/ check answered without Docker-Distribution-Api-Version",
    doc: include_str!("../../docs/rules/registry-api-version-missing.md"),
    suppress_for_ns: Some(60_000_000_000),
    explained_by_others: false,
};

/// Every registry client pings `/v2/` before its requests, so a proxy that drops the header
/// would make a finding per request: the servers reported, and when, are kept (bounded), and a
/// repeat within [`INFO`]'s interval is counted, not built.
pub struct RegistryApiVersionMissing {
    /// Servers reported (their earlier answer showed a registry's check).
    reported: Repeats<SocketAddr>,
}

impl Default for RegistryApiVersionMissing {
    fn default() -> RegistryApiVersionMissing {
        RegistryApiVersionMissing {
            reported: Repeats::new(INFO.suppress_for_ns),
        }
    }
}

/// Whether a request target names exactly the `/v2/` check (origin or absolute form), read
/// without copying it.
fn is_v2_check(uri: &[u8]) -> bool {
    let path = match memchr::memchr(b'?', uri) {
        Some(i) => uri.get(..i).unwrap_or(uri),
        None => uri,
    };
    let path = path.strip_suffix(b"/").unwrap_or(path);
    // Nearly every request ends otherwise: one comparison decides.
    path.ends_with(b"/v2") && target_path(path) == b"/v2"
}

/// User agents of registry clients (docker, containerd, the containers/image tools, go-
/// containerregistry, oras, helm, cri-o, kaniko, buildkit, skopeo).
const REGISTRY_CLIENTS: [&str; 10] = [
    "docker/",
    "containerd/",
    "containers/",
    "go-containerregistry",
    "oras/",
    "helm/",
    "cri-o/",
    "kaniko/",
    "buildkit/",
    "skopeo/",
];

/// Whether the exchange is a registry's API check, not some other service's `/v2/`: a registry
/// client asked, or the answer is a registry's (a Bearer token challenge, or distribution's
/// empty JSON object `{}`).
fn is_registry_check(ex: &Exchange) -> bool {
    let (Some(req), Some(resp)) = (&ex.request, &ex.response) else {
        return false;
    };
    let ua = req
        .header_str("user-agent")
        .unwrap_or_default()
        .to_ascii_lowercase();
    let challenge = resp
        .header_str("www-authenticate")
        .is_some_and(|c| c.trim_start().to_ascii_lowercase().starts_with("bearer "));
    let empty_json = resp.status() == Some(200)
        && resp.body.length == 2
        && resp
            .header_str("content-type")
            .is_some_and(|c| c.contains("json"));
    REGISTRY_CLIENTS.iter().any(|c| ua.contains(c)) || challenge || empty_json
}

impl Rule for RegistryApiVersionMissing {
    fn info(&self) -> &'static RuleInfo {
        &INFO
    }

    fn suppressed(&self) -> u64 {
        self.reported.count
    }

    fn state_dropped(&self) -> u64 {
        self.reported.dropped()
    }

    fn interest(&self) -> Interest {
        Interest::V2_PATH
    }

    fn on_exchange(&mut self, ex: &Exchange, out: &mut Vec<Finding>) {
        let (Some(req), Some(resp)) = (&ex.request, &ex.response) else {
            return;
        };
        if !matches!(req.method(), Some("GET" | "HEAD")) {
            return;
        }
        if !is_v2_check(req.uri().unwrap_or_default()) {
            return;
        }
        let status = resp.status().unwrap_or(0);
        if !matches!(status, 200 | 401) || resp.header("docker-distribution-api-version").is_some()
        {
            return;
        }
        // A server already reported (its earlier answer showed a registry's check) within the
        // interval: counted, neither checked again nor built.
        if self.reported.repeats(&ex.server, req.first_ts) || !is_registry_check(ex) {
            return;
        }
        self.reported.report(ex.server, req.first_ts);
        let server = resp
            .header_str("server")
            .map(|s| format!(" (Server: {s})"))
            .unwrap_or_default();
        let detail = format!(
            "{} sent {}, the API version check every registry client makes first; {}{server} \
             answered {status} (frame {}) without `Docker-Distribution-Api-Version: registry/2.0`, \
             which a registry always sends (the distribution API spec), on its 401s too. A proxy \
             in front of the registry dropped it{}. Clients that check it (older docker engines, \
             registry tools) take the endpoint for something that is not a v2 registry and \
             refuse it or fall back.",
            ex.client,
            request_line(req, 80),
            ex.server,
            resp.frame,
            if status == 401 {
                ", or answered the 401 itself (nginx leaves headers added with `add_header` off \
                 4xx answers unless `always` is given)"
            } else {
                " (`proxy_hide_header`, a header filter)"
            },
        );
        let remediation = "On the proxy in front of the registry, pass the header through (no \
             `proxy_hide_header Docker-Distribution-Api-Version`), or add it for the registry's \
             paths on every answer: nginx `add_header Docker-Distribution-Api-Version registry/2.0 \
             always;` in the `/v2/` location, as distribution's own nginx recipe does (`always`, so \
             that 401s carry it). Verify with `curl -si http://REGISTRY/v2/`: the header must be \
             there on the 200 or 401."
            .to_string();
        out.push(
            FindingDraft {
                rule: INFO.id,
                severity: INFO.severity,
                key_frame: resp.frame,
                evidence: exchange_evidence(ex, "API version check", "answered without the header"),
                title: format!(
                    "{} answered /v2/ {status} without Docker-Distribution-Api-Version",
                    ex.server
                ),
                detail,
                remediation,
                time: secs(req.first_ts),
                identifier: Some(ex.server.to_string()),
            }
            .build(),
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rules::testing::exchange;

    fn run(req: &[u8], resp: &[u8]) -> usize {
        let ex = exchange("10.0.0.1:40000", "10.0.0.2:5000", 0, 4, 0, req, resp);
        let mut out = Vec::new();
        RegistryApiVersionMissing::default().on_exchange(&ex, &mut out);
        out.len()
    }

    const BARE_401: &[u8] = b"HTTP/1.1 401 Unauthorized\r\nWww-Authenticate: Bearer realm=\"x\"\r\nContent-Length: 0\r\n\r\n";

    #[test]
    fn only_a_registry_check_without_the_header() {
        let ping = b"GET /v2/ HTTP/1.1\r\nHost: r\r\nUser-Agent: containerd/1.7.2\r\n\r\n";
        assert_eq!(run(ping, BARE_401), 1);
        assert_eq!(
            run(
                b"GET http://r:5000/v2/ HTTP/1.1\r\nHost: r\r\n\r\n",
                BARE_401
            ),
            1
        );
        let with = b"HTTP/1.1 200 OK\r\nDocker-Distribution-Api-Version: registry/2.0\r\nContent-Length: 2\r\n\r\n{}";
        assert_eq!(run(ping, with), 0);
        let manifest = b"GET /v2/x/manifests/1 HTTP/1.1\r\nHost: r\r\n\r\n";
        assert_eq!(run(manifest, BARE_401), 0);
        let bad_gateway = b"HTTP/1.1 502 Bad Gateway\r\nContent-Length: 0\r\n\r\n";
        assert_eq!(run(ping, bad_gateway), 0);
        // Another service's /v2/, asked by a browser: not a registry's check.
        let browser = b"GET /v2/ HTTP/1.1\r\nHost: app\r\nUser-Agent: Mozilla/5.0\r\n\r\n";
        let page = b"HTTP/1.1 200 OK\r\nContent-Type: text/html\r\nContent-Length: 5\r\n\r\nhello";
        assert_eq!(run(browser, page), 0);
        assert!(is_v2_check(b"/v2/") && is_v2_check(b"/v2") && is_v2_check(b"/v2/?x=1"));
        assert!(is_v2_check(b"https://r.example:5000/v2/"));
        assert!(!is_v2_check(b"/v2/x/") && !is_v2_check(b"https://r/v3/") && !is_v2_check(b"/"));
    }

    #[test]
    fn repeats_are_counted_not_built() {
        let mut r = RegistryApiVersionMissing::default();
        let mut out = Vec::new();
        for (f, t) in [(4, 0), (8, 10), (12, 100)] {
            let ex = exchange(
                "10.0.0.1:40000",
                "10.0.0.2:5000",
                0,
                f,
                t,
                b"GET /v2/ HTTP/1.1\r\nHost: r\r\n\r\n",
                BARE_401,
            );
            r.on_exchange(&ex, &mut out);
        }
        assert_eq!(out.len(), 2);
        assert_eq!(r.suppressed(), 1);
    }
}
