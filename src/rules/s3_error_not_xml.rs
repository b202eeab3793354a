//! `s3-error-not-xml`: an S3-signed request answered with an error whose body is not S3's XML
//! `<Error>` document (typically an HTML page from an nginx/openresty gateway), so the S3 SDK
//! cannot decode it and the registry fails its own client with a 500.
//!
//! SDK retries of the same request are grouped; the 5xx the same host (the registry, the S3
//! client) sends its own client around that time is correlated. The finding is emitted when
//! that 5xx arrives, or when no more retries have come for
//! [`SETTLE_NS`](super::kit::s3_groups::SETTLE_NS) of capture time.

use super::kit::{
    S3Group, S3Groups, body_of, exchange_evidence, html_title, looks_like_html, request_line, secs,
};
use super::s3::{is_s3_request, parse_s3_error};
use super::{Interest, Rule, RuleInfo};
use crate::capture::TimestampNs;
use crate::finding::{Evidence, Finding, FindingDraft, Severity};
use crate::http::Exchange;

pub static INFO: RuleInfo = RuleInfo {
    id: "s3-error-not-xml",
    severity: Severity::Error,
    title: "S3 error answered with a non-XML body (HTML from a gateway)",
    doc: include_str!("../../docs/rules/s3-error-not-xml.md"),
    suppress_for_ns: None,
    explained_by_others: false,
};

#[derive(Clone, Debug)]
struct BadAnswer {
    evidence: Vec<Evidence>,
    status: u16,
    content_type: String,
    server: String,
    title: Option<String>,
    amz_request_id: bool,
    body_len: u64,
    resp_frame: u64,
}

/// A group: the request (method, path) the SDK retried, and the request line shown.
type Group = S3Group<(String, String), (String, BadAnswer)>;

#[derive(Default)]
pub struct S3ErrorNotXml {
    groups: S3Groups<(String, String), (String, BadAnswer)>,
}

impl S3ErrorNotXml {
    fn emit(g: Group, out: &mut Vec<Finding>) {
        let Some((request, first)) = g.answers.first().cloned() else {
            return;
        };
        let mut evidence: Vec<Evidence> = g
            .answers
            .iter()
            .flat_map(|(_, a)| a.evidence.clone())
            .collect();
        let mut statuses: Vec<u16> = g.answers.iter().map(|(_, a)| a.status).collect();
        statuses.sort_unstable();
        statuses.dedup();
        let statuses: Vec<String> = statuses.iter().map(u16::to_string).collect();
        let what = if first.body_len == 0 {
            "an empty body".to_string()
        } else if first.content_type.is_empty() {
            "a body that is not XML".to_string()
        } else {
            format!("a {} body", first.content_type)
        };
        let producer = if first.server.is_empty() {
            "no Server header".to_string()
        } else {
            format!("Server: {}", first.server)
        };
        let title_txt = first
            .title
            .as_ref()
            .map(|t| format!(", page title \"{t}\""))
            .unwrap_or_default();
        let amz = if first.amz_request_id {
            "it does carry an x-amz-request-id"
        } else {
            "no x-amz-request-id, so it did not come from S3"
        };
        let tries = if g.count > 1 {
            format!("{} times (the SDK retrying)", g.count)
        } else {
            "once".to_string()
        };
        let mut detail = format!(
            "{} sent the S3 request {} to {} {tries}; it was answered {} with {what} ({producer}{title_txt}; {amz}) instead of S3's XML <Error> document. \
             S3 SDKs cannot decode that and fail with an error such as `SerializationError: failed to decode REST XML response ... expected element type <Error> but have <html>`.",
            g.s3_client,
            request,
            g.endpoint,
            statuses.join("/"),
        );
        g.tell_caused(
            "then answered",
            " No 5xx from the S3 client to its own client was seen in the capture around that time.",
            &mut detail,
            &mut evidence,
        );
        let remediation = format!(
            "Make the gateway at {gw} pass S3's own XML error responses through instead of replacing them with HTML pages \
             (nginx: no `proxy_intercept_errors on` or `error_page` for the S3 location; and fix the failure the {st} stands for, \
             e.g. the gateway's upstream), or point the registry's storage endpoint (`storage.s3.regionendpoint`, \
             `REGISTRY_STORAGE_S3_REGIONENDPOINT`) at the real S3 service. Verify with \
             `curl -si http://{gw}/<bucket>/capdiag-no-such-key`: S3 answers `Content-Type: application/xml` with \
             `<Error><Code>NoSuchKey</Code>` (or AccessDenied), never `text/html`.",
            gw = g.endpoint,
            st = statuses.join("/"),
        );
        out.push(
            FindingDraft {
                rule: INFO.id,
                severity: INFO.severity,
                key_frame: first.resp_frame,
                evidence,
                title: format!(
                    "S3 endpoint {} answered {} with {} instead of an S3 XML error",
                    g.endpoint,
                    statuses.join("/"),
                    if first.body_len == 0 {
                        "an empty body"
                    } else if first.title.is_some() || first.content_type.contains("html") {
                        "an HTML page"
                    } else {
                        "a non-XML body"
                    },
                ),
                detail,
                remediation,
                identifier: None,
                time: secs(g.first_ts),
            }
            .build(),
        );
    }
}

impl Rule for S3ErrorNotXml {
    fn info(&self) -> &'static RuleInfo {
        &INFO
    }

    fn interest(&self) -> Interest {
        Interest::S3_REFUSED | Interest::STATUS_5XX
    }

    fn on_exchange(&mut self, ex: &Exchange, out: &mut Vec<Finding>) {
        let (Some(req), Some(resp)) = (&ex.request, &ex.response) else {
            return;
        };
        let status = resp.status().unwrap_or(0);
        let method = req.method().unwrap_or_default();
        let bad = status >= 300
            && is_s3_request(req)
            && status != 304
            && method != "HEAD"
            && resp.complete
            && {
                let body = body_of(resp);
                parse_s3_error(&body).is_none()
            };
        if bad {
            let body = body_of(resp);
            let path = String::from_utf8_lossy(req.uri().unwrap_or_default());
            let path = path.split('?').next().unwrap_or_default().to_string();
            let key = (method.to_string(), path);
            let answer = BadAnswer {
                evidence: super::kit::named(
                    exchange_evidence(ex, "S3 request", "non-XML S3 error"),
                    ex.server,
                    "S3 endpoint",
                ),
                status,
                content_type: resp.header_str("content-type").unwrap_or_default(),
                server: resp.header_str("server").unwrap_or_default(),
                title: if looks_like_html(resp, &body) {
                    html_title(&body)
                } else {
                    None
                },
                amz_request_id: resp.header("x-amz-request-id").is_some(),
                body_len: resp.body.length,
                resp_frame: resp.frame,
            };
            if let Some(g) = self.groups.add(ex, key, (request_line(req, 80), answer)) {
                Self::emit(g, out);
            }
            return;
        }
        if let Some(g) = self.groups.other(ex) {
            Self::emit(g, out);
        }
    }

    fn next_deadline(&self) -> Option<TimestampNs> {
        self.groups.next_deadline()
    }

    fn on_tick(&mut self, now: TimestampNs, out: &mut Vec<Finding>) {
        for g in self.groups.take_due(now) {
            Self::emit(g, out);
        }
    }

    fn finish(&mut self, out: &mut Vec<Finding>) {
        for g in self.groups.drain() {
            Self::emit(g, out);
        }
    }

    fn state_dropped(&self) -> u64 {
        self.groups.dropped()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rules::testing::exchange;

    /// 5xx answers kept in case an S3 error group starts after them: the oldest beyond 64 are
    /// dropped and counted.
    #[test]
    fn recent_server_errors_beyond_the_limit_are_counted() {
        let mut r = S3ErrorNotXml::default();
        let mut out = Vec::new();
        for i in 0..70u64 {
            let ex = exchange(
                "10.0.0.1:1000",
                "10.0.0.2:5000",
                i,
                1 + 4 * i,
                1_700_000_000,
                b"GET /v2/a/manifests/latest HTTP/1.1\r\nHost: reg\r\n\r\n",
                b"HTTP/1.1 500 Internal Server Error\r\nContent-Length: 0\r\n\r\n",
            );
            r.on_exchange(&ex, &mut out);
        }
        assert_eq!(r.groups.recent_5xx(), 64);
        assert_eq!(r.state_dropped(), 6);
    }
}
