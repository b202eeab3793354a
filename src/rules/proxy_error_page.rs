//! `proxy-error-page`: a registry API request (`/v2/...`) answered with an error page that is
//! not the registry's: a `4xx`/`5xx` whose body is HTML or otherwise not JSON and that lacks
//! `Docker-Distribution-Api-Version`. A proxy in front of the registry answered (most of all
//! 502/503/504: its upstream refused, failed or timed out); clients fail with docker's
//! `invalid character '<' looking for beginning of value`.
//!
//! Not for a request that is not the registry API's (S3 requests have `s3-error-not-xml`), a
//! `413` (`proxy-body-too-large`), a `429` (`rate-limited`), nor a `400` answering bytes that
//! were not HTTP (a TLS ClientHello sent to a plain-HTTP port has no request to pair with).
//! One finding a minute per client and server.

use super::kit::{
    Repeats, body_of, exchange_evidence, html_title, looks_like_html, request_line, secs,
    target_path, tls_port_answer,
};
use super::{Interest, Rule, RuleInfo};
use crate::finding::{Finding, FindingDraft, Severity};
use crate::http::Exchange;
use std::net::{IpAddr, SocketAddr};

pub static INFO: RuleInfo = RuleInfo {
    id: "proxy-error-page",
    severity: Severity::Error,
    title: "A registry API request answered with a proxy's error page (not the registry's JSON)",
    doc: include_str!("../../docs/rules/proxy-error-page.md"),
    suppress_for_ns: Some(60_000_000_000),
    explained_by_others: false,
};

/// A failing proxy answers every request of every client the same way: the (client, server,
/// status) reported, and when, are kept (bounded), and a repeat within [`INFO`]'s interval is
/// counted, not built.
pub struct ProxyErrorPage {
    reported: Repeats<(IpAddr, SocketAddr, u16)>,
}

impl Default for ProxyErrorPage {
    fn default() -> ProxyErrorPage {
        ProxyErrorPage {
            reported: Repeats::new(INFO.suppress_for_ns),
        }
    }
}

/// What a status means when a proxy sends it.
fn meaning(status: u16) -> &'static str {
    match status {
        502 => "the proxy could not get an answer from its upstream (refused, reset, or not HTTP)",
        503 => "the proxy has no healthy upstream (or is rate limiting or in maintenance)",
        504 => "the proxy's upstream did not answer in time",
        500 => "the proxy itself failed",
        404 | 405 => "the proxy has no route for the registry's path (a wrong location or host)",
        401 | 403 => {
            "the proxy refused the request itself (its own authentication or access rules)"
        }
        _ => "the proxy answered instead of the registry",
    }
}

impl Rule for ProxyErrorPage {
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
        let status = resp.status().unwrap_or(0);
        if status < 400 || matches!(status, 413 | 429) {
            return;
        }
        let uri = req.uri().unwrap_or_default();
        // Origin form, or absolute form (through a forward proxy): the path after the authority.
        let path = target_path(uri);
        if !(path.starts_with(b"/v2/") || path == b"/v2") {
            return;
        }
        // A TLS port's answer to plain HTTP is `tls-protocol-mismatch`'s.
        if resp.header("docker-distribution-api-version").is_some()
            || tls_port_answer(resp).is_some()
        {
            return;
        }
        let json = resp.header("content-type").is_some_and(|t| {
            memchr::memchr2_iter(b'j', b'J', t).any(|i| {
                t.get(i..i + 4)
                    .is_some_and(|w| w.eq_ignore_ascii_case(b"json"))
            })
        });
        if json {
            return;
        }
        let key = (ex.client.ip(), ex.server, status);
        if self.reported.repeats(&key, req.first_ts) {
            return;
        }
        self.reported.report(key, req.first_ts);
        let ctype = resp
            .header_str("content-type")
            .unwrap_or_default()
            .to_ascii_lowercase();
        let body = body_of(resp);
        let title = if looks_like_html(resp, &body) {
            html_title(&body)
        } else {
            None
        };
        let who = match resp.header_str("server") {
            Some(s) => format!("Server: {s}"),
            None => "no Server header".to_string(),
        };
        let page = match (&title, ctype.is_empty()) {
            (Some(t), _) => format!("an HTML page titled \"{t}\""),
            (None, true) if resp.body.length == 0 => "an empty body".to_string(),
            (None, true) => "a body with no content type".to_string(),
            (None, false) => format!("a {ctype} body"),
        };
        let waited = resp.first_ts.saturating_sub(req.end_ts).max(0) as f64 / 1e6;
        let mut detail = format!(
            "{} sent {} to {}; it was answered {status} (frame {}) with {page} ({who}) and no \
             Docker-Distribution-Api-Version header: a proxy in front of the registry answered, \
             not the registry, which answers its API with JSON errors. {status} from a proxy: {}.",
            ex.client,
            request_line(req, 80),
            ex.server,
            resp.frame,
            meaning(status),
        );
        if status == 504 || status == 502 {
            detail.push_str(&format!(
                " The answer came {waited:.1} ms after the request was sent."
            ));
        }
        detail.push_str(
            " Clients fail with an error such as docker's `invalid character '<' looking for \
             beginning of value`.",
        );
        let remediation = format!(
            "Look at the proxy at {} (its error log has the cause for this request): for 502, is \
             the registry up and listening where `proxy_pass`/the backend points, and does it \
             speak plain HTTP or TLS as the proxy expects; for 503, the backend's health checks \
             and replicas; for 504, the registry's response time and the proxy's \
             `proxy_read_timeout` (large blobs and slow storage need minutes); for 404/405, the \
             proxy's routes for `/v2/` and the `Host` it forwards. Verify with `curl -si \
             http://REGISTRY/v2/` through the proxy: the answer must carry \
             Docker-Distribution-Api-Version.",
            ex.server
        );
        out.push(
            FindingDraft {
                rule: INFO.id,
                severity: INFO.severity,
                key_frame: resp.frame,
                evidence: super::kit::named(
                    exchange_evidence(ex, "registry API request", "answered by a proxy"),
                    ex.server,
                    "proxy",
                ),
                title: format!(
                    "{} answered a registry API request {status} with {}, not the registry",
                    ex.server,
                    if title.is_some() {
                        "an HTML error page"
                    } else {
                        "a non-JSON error"
                    }
                ),
                detail,
                remediation,
                time: secs(req.first_ts),
                identifier: Some(format!("{} {} {status}", ex.client.ip(), ex.server)),
            }
            .build(),
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rules::testing::exchange;

    fn run(req: &[u8], resp: &[u8]) -> Vec<Finding> {
        let ex = exchange("10.0.0.1:40000", "10.0.0.2:443", 0, 4, 0, req, resp);
        let mut out = Vec::new();
        ProxyErrorPage::default().on_exchange(&ex, &mut out);
        out
    }

    const GET: &[u8] = b"GET /v2/lab/x/manifests/1 HTTP/1.1\r\nHost: r\r\n\r\n";

    #[test]
    fn an_html_502_from_a_proxy() {
        let f = run(
            GET,
            b"HTTP/1.1 502 Bad Gateway\r\nServer: nginx\r\nContent-Type: text/html\r\nContent-Length: 45\r\n\r\n<html><title>502 Bad Gateway</title></html>\r\n",
        );
        assert_eq!(f.len(), 1);
        assert!(
            f[0].detail.contains("titled \"502 Bad Gateway\""),
            "{}",
            f[0].detail
        );
        assert!(f[0].detail.contains("upstream"), "{}", f[0].detail);
    }

    #[test]
    fn not_the_registrys_own_errors_nor_other_paths() {
        let registry = b"HTTP/1.1 404 Not Found\r\nDocker-Distribution-Api-Version: registry/2.0\r\nContent-Type: application/json\r\nContent-Length: 2\r\n\r\n{}";
        assert!(run(GET, registry).is_empty());
        let html =
            b"HTTP/1.1 502 Bad Gateway\r\nContent-Type: text/html\r\nContent-Length: 0\r\n\r\n";
        assert!(run(b"GET /bucket/key HTTP/1.1\r\nHost: s3\r\n\r\n", html).is_empty());
        let json = b"HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/json\r\nContent-Length: 2\r\n\r\n{}";
        assert!(run(GET, json).is_empty());
        let too_large = b"HTTP/1.1 413 Request Entity Too Large\r\nContent-Type: text/html\r\nContent-Length: 0\r\n\r\n";
        assert!(run(GET, too_large).is_empty());
        assert_eq!(
            run(b"GET https://r:443/v2/ HTTP/1.1\r\nHost: r\r\n\r\n", html).len(),
            1
        );
    }
}
