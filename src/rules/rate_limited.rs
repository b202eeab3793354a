//! `rate-limited`: a request answered `429 Too Many Requests`: a registry (Docker Hub's pull
//! limit, `TOOMANYREQUESTS`) or a proxy in front of it (nginx `limit_req`) limits the client.
//! Clients fail with `toomanyrequests: You have reached your pull rate limit` or retry with
//! back-off.
//!
//! The finding is made on the first 429 from a server to a client; more within a minute are
//! suppressed (and counted in the summary), so that a retrying client makes one finding.

use super::kit::{body_of, exchange_evidence, request_line, secs};
use super::{Interest, Rule, RuleInfo};
use crate::finding::{Finding, FindingDraft, Severity};
use crate::http::Exchange;

pub static INFO: RuleInfo = RuleInfo {
    id: "rate-limited",
    severity: Severity::Warning,
    title: "Requests refused with 429 Too Many Requests (a rate limit)",
    doc: include_str!("../../docs/rules/rate-limited.md"),
    suppress_for_ns: Some(60_000_000_000),
    explained_by_others: false,
};

#[derive(Default)]
pub struct RateLimited;

/// The rate-limit headers an answer carries, as `Name: value`.
const LIMIT_HEADERS: [&str; 6] = [
    "ratelimit-limit",
    "ratelimit-remaining",
    "ratelimit-reset",
    "retry-after",
    "docker-ratelimit-source",
    "x-ratelimit-limit",
];

impl Rule for RateLimited {
    fn info(&self) -> &'static RuleInfo {
        &INFO
    }

    fn interest(&self) -> Interest {
        Interest::STATUS_429
    }

    fn on_exchange(&mut self, ex: &Exchange, out: &mut Vec<Finding>) {
        let (Some(req), Some(resp)) = (&ex.request, &ex.response) else {
            return;
        };
        if resp.status() != Some(429) {
            return;
        }
        let from_registry = resp.header("docker-distribution-api-version").is_some();
        let body = body_of(resp);
        let code = memchr::memmem::find(&body, b"TOOMANYREQUESTS").map(|_| "TOOMANYREQUESTS");
        let limits: Vec<String> = LIMIT_HEADERS
            .iter()
            .filter_map(|h| resp.header_str(h).map(|v| format!("{h}: {v}")))
            .collect();
        let who = match (from_registry, resp.header_str("server")) {
            (true, _) => format!("the registry at {} itself", ex.server),
            (false, Some(s)) => format!(
                "a proxy hop at {} (Server: {s}; no Docker-Distribution-Api-Version)",
                ex.server
            ),
            (false, None) => format!("{} (no Server header)", ex.server),
        };
        let mut detail = format!(
            "{} sent {}; {who} answered 429 Too Many Requests (frame {})",
            ex.client,
            request_line(req, 80),
            resp.frame
        );
        if let Some(c) = code {
            detail.push_str(&format!(", error code {c}"));
        }
        if limits.is_empty() {
            detail.push_str(", with no rate-limit headers.");
        } else {
            detail.push_str(&format!(", with {}.", limits.join(", ")));
        }
        detail.push_str(
            " The client is over a request rate limit; pulls fail with errors such as \
             `toomanyrequests: You have reached your pull rate limit`. Further 429s from the \
             same server to the same client within a minute are counted, not repeated.",
        );
        let remediation = if from_registry {
            "Authenticate the pulls (`docker login`, an image pull secret in Kubernetes): \
             anonymous pulls have the lowest limits; pull through a mirror or pull-through cache \
             (distribution's `proxy.remoteurl`, Harbor's proxy cache projects, containerd's \
             `hosts.toml` mirrors) so that many nodes do not pull the same image from the \
             registry; honour `Retry-After`."
        } else {
            "The limit is the proxy's (nginx `limit_req`/`limit_conn`, an ingress rate-limit \
             annotation such as `nginx.ingress.kubernetes.io/limit-rps`, a WAF or API gateway \
             policy): raise it for registry clients, whose pulls come in bursts of many \
             requests (a manifest, then every layer), or exempt the registry's paths; honour \
             `Retry-After` in clients."
        }
        .to_string();
        out.push(
            FindingDraft {
                rule: INFO.id,
                severity: INFO.severity,
                key_frame: resp.frame,
                evidence: exchange_evidence(ex, "request", "rate limited"),
                title: format!(
                    "{} refused {} with 429 Too Many Requests",
                    ex.server,
                    ex.client.ip()
                ),
                detail,
                remediation,
                time: secs(req.first_ts),
                identifier: Some(format!("{} {}", ex.client.ip(), ex.server)),
            }
            .build(),
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rules::testing::exchange;

    fn run(resp: &[u8]) -> Vec<Finding> {
        let ex = exchange(
            "10.0.0.1:40000",
            "10.0.0.2:443",
            0,
            4,
            0,
            b"GET /v2/library/alpine/manifests/3 HTTP/1.1\r\nHost: r\r\n\r\n",
            resp,
        );
        let mut out = Vec::new();
        RateLimited.on_exchange(&ex, &mut out);
        out
    }

    #[test]
    fn docker_hubs_answer_is_the_registrys() {
        let f = run(b"HTTP/1.1 429 Too Many Requests\r\nDocker-Distribution-Api-Version: registry/2.0\r\nRateLimit-Limit: 100;w=21600\r\nRateLimit-Remaining: 0;w=21600\r\nContent-Type: application/json\r\nContent-Length: 62\r\n\r\n{\"errors\":[{\"code\":\"TOOMANYREQUESTS\",\"message\":\"pull limit\"}]}");
        assert_eq!(f.len(), 1);
        let d = &f[0].detail;
        assert!(d.contains("the registry at 10.0.0.2:443 itself"), "{d}");
        assert!(d.contains("TOOMANYREQUESTS"), "{d}");
        assert!(d.contains("ratelimit-remaining: 0;w=21600"), "{d}");
        assert!(f[0].remediation.contains("docker login"));
    }

    #[test]
    fn only_429() {
        assert!(run(b"HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\n\r\n").is_empty());
        assert!(run(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n").is_empty());
    }
}
