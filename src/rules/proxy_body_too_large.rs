//! `proxy-body-too-large`: a request with a body (a blob `PATCH`/`PUT`/`POST`, any upload)
//! answered `413 Request Entity Too Large`, typically by a proxy hop that judged the
//! `Content-Length` header before the body was through (nginx's `client_max_body_size`, 1 MiB by
//! default). The client then fails with an error such as docker's `error parsing HTTP 413
//! response body: invalid character '<' looking for beginning of value`.
//!
//! The finding is made when the exchange completes (the 413 pairs with the request even when
//! it arrives while the body is still being sent). Repeats (a client retrying the same upload)
//! are suppressed for a minute.

use super::kit::{body_of, exchange_evidence, html_title, looks_like_html, request_line, secs};
use super::{Interest, Rule, RuleInfo};
use crate::finding::{Evidence, Finding, FindingDraft, Severity, name_server};
use crate::http::{Exchange, Message};

pub static INFO: RuleInfo = RuleInfo {
    id: "proxy-body-too-large",
    severity: Severity::Error,
    title: "A request body refused with 413 by a proxy hop (body size limit)",
    doc: include_str!("../../docs/rules/proxy-body-too-large.md"),
    suppress_for_ns: Some(60_000_000_000),
    explained_by_others: false,
};

#[derive(Default)]
pub struct ProxyBodyTooLarge;

/// The body length the request announced (`Content-Length`), if any.
fn announced(req: &Message) -> Option<u64> {
    req.header_str("content-length")
        .and_then(|v| v.trim().parse().ok())
}

/// Whether the request carries a body: an upload method, a non-zero `Content-Length`, or a
/// chunked body.
fn has_body(req: &Message) -> bool {
    matches!(req.method(), Some("PATCH" | "PUT" | "POST"))
        || announced(req).is_some_and(|n| n > 0)
        || req
            .header_str("transfer-encoding")
            .is_some_and(|t| t.to_ascii_lowercase().contains("chunked"))
        || req.body.length > 0
}

/// Who answered: the `Server` and `Via` headers, the page title, and whether the registry's
/// own header is there.
fn hop(resp: &Message) -> String {
    let mut parts = Vec::new();
    if let Some(s) = resp.header_str("server") {
        parts.push(format!("Server: {s}"));
    }
    if let Some(v) = resp.header_str("via") {
        parts.push(format!("Via: {v}"));
    }
    let body = body_of(resp);
    if looks_like_html(resp, &body)
        && let Some(t) = html_title(&body)
    {
        parts.push(format!("page title \"{t}\""));
    }
    if parts.is_empty() {
        "no Server or Via header".to_string()
    } else {
        parts.join(", ")
    }
}

impl Rule for ProxyBodyTooLarge {
    fn info(&self) -> &'static RuleInfo {
        &INFO
    }

    fn interest(&self) -> Interest {
        Interest::STATUS_413
    }

    fn on_exchange(&mut self, ex: &Exchange, out: &mut Vec<Finding>) {
        let (Some(req), Some(resp)) = (&ex.request, &ex.response) else {
            return;
        };
        if resp.status() != Some(413) || !has_body(req) {
            return;
        }
        let from_registry = resp.header("docker-distribution-api-version").is_some();
        let who = hop(resp);
        let sent = req.body.length;
        let of = announced(req);
        let sent_txt = match of {
            Some(n) => format!("{sent} of the {n} body bytes it announced"),
            None => format!("{sent} body bytes"),
        };
        let label = if req.complete {
            "request with a body"
        } else {
            "request headers (its body cut short)"
        };
        let mut evidence = exchange_evidence(ex, label, "refused");
        if let Some(e) = evidence.iter_mut().find(|e| e.frame == req.frame) {
            e.frame = req.first_frame;
            e.time = Some(req.first_ts);
        }
        if req.frame != req.first_frame {
            let (client, server) = super::kit::exchange_parties(ex);
            evidence.push(Evidence::packet(
                req.frame,
                Some(ex.stream),
                (client, server),
                req.frame_ts(),
                format!(
                    "last body bytes sent: {sent_txt}{}",
                    if req.complete {
                        String::new()
                    } else {
                        ", the rest never sent (cut short)".to_string()
                    }
                ),
                format!("body: {sent} bytes sent"),
            ));
        }
        name_server(
            &mut evidence,
            ex.server,
            if from_registry { "registry" } else { "proxy" },
        );
        let answered_by = if from_registry {
            format!(
                "by the registry itself at {} (it sends Docker-Distribution-Api-Version; {who})",
                ex.server
            )
        } else {
            format!(
                "by a proxy hop at {} ({who}; no Docker-Distribution-Api-Version, so not the registry)",
                ex.server
            )
        };
        let detail = format!(
            "{} sent {} with a body to {}; it was answered 413 (frame {}) {answered_by}, \
             after {sent_txt} had been sent. The hop refused the body on its size, \
             before it was through, so the upload never reached the registry. Clients fail with \
             an error such as docker's `error parsing HTTP 413 response body: invalid character \
             '<' looking for beginning of value`.",
            ex.client,
            request_line(req, 80),
            ex.server,
            resp.frame,
        );
        let remediation = "Lift the request body size limit on every proxy hop between the client \
             and the registry: nginx `client_max_body_size 0;` (its default is 1 MiB), \
             ingress-nginx annotation `nginx.ingress.kubernetes.io/proxy-body-size: \"0\"`, \
             Harbor's own nginx (`client_max_body_size 0;` in its nginx.conf), OpenShift routes \
             and HAProxy have no body limit by default, but check `http-request deny` rules and \
             `tune.bufsize`; a cloud load balancer's or WAF's request size limit likewise. \
             Verify by pushing a layer larger than the old limit."
            .to_string();
        out.push(
            FindingDraft {
                rule: INFO.id,
                severity: INFO.severity,
                key_frame: resp.frame,
                evidence,
                title: format!(
                    "{} refused a {}-byte request body with 413 (body size limit)",
                    ex.server,
                    of.unwrap_or(sent)
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

    fn run(req: &[u8], resp: &[u8]) -> Vec<Finding> {
        let ex = exchange("10.0.0.1:40000", "10.0.0.2:443", 0, 4, 0, req, resp);
        let mut out = Vec::new();
        ProxyBodyTooLarge.on_exchange(&ex, &mut out);
        out
    }

    const NGINX_413: &[u8] = b"HTTP/1.1 413 Request Entity Too Large\r\nServer: nginx\r\nContent-Type: text/html\r\nContent-Length: 62\r\n\r\n<html><head><title>413 Request Entity Too Large</title></head>";

    #[test]
    fn an_upload_refused_by_a_proxy() {
        let f = run(
            b"PATCH /v2/x/blobs/uploads/1 HTTP/1.1\r\nHost: r\r\nContent-Length: 4\r\n\r\nabcd",
            NGINX_413,
        );
        assert_eq!(f.len(), 1);
        assert!(f[0].detail.contains("by a proxy hop"), "{}", f[0].detail);
        assert!(f[0].detail.contains("Server: nginx"), "{}", f[0].detail);
        assert!(
            f[0].detail.contains("4 of the 4 body bytes"),
            "{}",
            f[0].detail
        );
    }

    #[test]
    fn not_without_a_body_nor_for_other_statuses() {
        assert!(run(b"GET /v2/ HTTP/1.1\r\nHost: r\r\n\r\n", NGINX_413).is_empty());
        assert!(
            run(
                b"PUT /v2/x HTTP/1.1\r\nHost: r\r\nContent-Length: 1\r\n\r\na",
                b"HTTP/1.1 201 Created\r\nContent-Length: 0\r\n\r\n"
            )
            .is_empty()
        );
    }

    #[test]
    fn the_registry_itself_is_named_as_such() {
        let f = run(
            b"PUT /v2/x HTTP/1.1\r\nHost: r\r\nContent-Length: 1\r\n\r\na",
            b"HTTP/1.1 413 Request Entity Too Large\r\nDocker-Distribution-Api-Version: registry/2.0\r\nContent-Length: 0\r\n\r\n",
        );
        assert_eq!(f.len(), 1);
        assert!(
            f[0].detail.contains("by the registry itself"),
            "{}",
            f[0].detail
        );
    }
}
