//! `presigned-url-403`: a redirect (3xx) to a presigned S3 URL, then the client's request to
//! that URL answered 403 (or 400/401). The causes that the packets can show are told apart:
//! expiry, clock skew, a `Host` that differs from the signed one, a different method, an extra
//! `Authorization` header, and S3's own error code. When the capture holds the redirect but no
//! follow-up at all (taken on the registry side), an `info` finding says where to capture.

use super::kit::{
    Url, Waiting, body_of, exchange_evidence, human_duration, named, parse_http_date, request_line,
    secs, target_path_query,
};
use super::s3::{Presigned, parse_s3_error, presigned};
use super::{Interest, Rule, RuleInfo};
use crate::capture::TimestampNs;
use crate::finding::{Finding, FindingDraft, Severity};
use crate::http::Exchange;
use crate::text::lossless;

pub static INFO: RuleInfo = RuleInfo {
    id: "presigned-url-403",
    severity: Severity::Error,
    title: "Request to a presigned S3 URL from a registry redirect is refused (403)",
    doc: include_str!("../../docs/rules/presigned-url-403.md"),
    suppress_for_ns: None,
    explained_by_others: false,
};

/// After the first refusal, further legs of the same follow-up (a proxy relaying it) are
/// gathered this long before the finding is emitted.
const SETTLE_NS: TimestampNs = 2_000_000_000;
/// A redirect with no follow-up at all is reported (info) after this long.
const NO_FOLLOW_UP_NS: TimestampNs = 60_000_000_000;

#[derive(Debug)]
struct FollowUp {
    ex: Exchange,
    status: u16,
}

#[derive(Debug)]
struct Redirect {
    ex: Exchange,
    url: Url,
    location: String,
    signed: Presigned,
    follow_ups: Vec<FollowUp>,
    refused_at: Option<TimestampNs>,
    ts: TimestampNs,
}

pub struct PresignedUrl403 {
    /// Redirects, each waiting until a refusal has had time to be relayed, or until its
    /// follow-up is overdue.
    redirects: Waiting<Redirect>,
    /// Follow-ups beyond the number kept per redirect.
    follow_ups_dropped: u64,
}

/// When a redirect is decided: [`SETTLE_NS`] after its refusal, or [`NO_FOLLOW_UP_NS`] after
/// it when none came.
/// The redirected request and its 307 as evidence, the server named the registry.
fn redirect_evidence(r: &Redirect) -> Vec<crate::finding::Evidence> {
    named(
        exchange_evidence(
            &r.ex,
            "request redirected",
            "redirect to a presigned S3 URL",
        ),
        r.ex.server,
        "registry",
    )
}

fn decided_at(r: &Redirect) -> TimestampNs {
    match r.refused_at {
        Some(t) => t.saturating_add(SETTLE_NS),
        None => r.ts.saturating_add(NO_FOLLOW_UP_NS),
    }
}

impl Default for PresignedUrl403 {
    fn default() -> PresignedUrl403 {
        PresignedUrl403 {
            redirects: Waiting::new(decided_at),
            follow_ups_dropped: 0,
        }
    }
}

fn redirect_of(ex: &Exchange) -> Option<(Url, String, Presigned)> {
    let resp = ex.response.as_ref()?;
    if !(300..400).contains(&resp.status()?) || resp.status() == Some(304) {
        return None;
    }
    let location = lossless(resp.header("location")?);
    let url = Url::parse(&location)?;
    let p = presigned(&url)?;
    Some((url, location, p))
}

fn causes(r: &Redirect, f: &FollowUp) -> (Vec<String>, Vec<String>) {
    let mut causes = Vec::new();
    let mut fixes = Vec::new();
    let Some(req) = &f.ex.request else {
        return (causes, fixes);
    };
    let resp = f.ex.response.as_ref();
    let sent_at = req.first_ts / 1_000_000_000;
    if let Some(exp) = r.signed.expires_at
        && sent_at > exp
    {
        causes.push(format!(
                "the URL had expired: it was valid until {} (X-Amz-Date + X-Amz-Expires), the request was sent {} later",
                fmt_time(exp),
                human_duration(sent_at.saturating_sub(exp))
            ));
        fixes.push(
            "follow the redirect promptly, or have the registry sign URLs for longer".to_string(),
        );
    }
    let s3_date = resp
        .and_then(|m| m.header_str("date"))
        .and_then(|d| parse_http_date(&d));
    if let (Some(s3_now), Some(signed)) = (s3_date, r.signed.signed_at) {
        let ahead = signed.saturating_sub(s3_now);
        if ahead > 15 * 60 {
            causes.push(format!(
                "clock skew: the URL was signed at {} (X-Amz-Date), {} ahead of S3's clock ({} in its Date header)",
                fmt_time(signed),
                human_duration(ahead),
                fmt_time(s3_now)
            ));
            fixes.push(
                "synchronise the registry host's and the S3 service's clocks (NTP)".to_string(),
            );
        } else if let Some(exp) = r.signed.expires_at
            && s3_now > exp
            && sent_at <= exp
        {
            causes.push(format!(
                    "clock skew: by S3's clock ({}) the URL had expired at {}, although by the capture's clock it had not",
                    fmt_time(s3_now),
                    fmt_time(exp)
                ));
            fixes.push(
                "synchronise the registry host's and the S3 service's clocks (NTP)".to_string(),
            );
        }
    }
    let host = req.header_str("host").unwrap_or_default();
    let signed_host = r.signed.signed_headers.iter().any(|h| h == "host") || !r.signed.v4;
    if signed_host && !host.is_empty() && !host.eq_ignore_ascii_case(&r.url.authority()) {
        causes.push(format!(
            "the Host header sent was `{host}`, but the URL was signed for `{}` (X-Amz-SignedHeaders includes host): a proxy or split DNS rewrote it",
            r.url.authority()
        ));
        fixes.push(format!(
            "send the request to {} with that Host unchanged (a proxy must not rewrite Host for presigned URLs), or point the registry's storage endpoint at the address clients use",
            r.url.authority()
        ));
    }
    let redirect_method =
        r.ex.request
            .as_ref()
            .and_then(|m| m.method())
            .unwrap_or_default();
    let method = req.method().unwrap_or_default();
    if !redirect_method.is_empty() && method != redirect_method {
        causes.push(format!(
            "the method changed: the redirect answered a {redirect_method}, the follow-up is a {method} (the signature covers the method)"
        ));
        fixes.push(format!("follow the redirect with {redirect_method}"));
    }
    if let Some(auth) = req.header_str("authorization") {
        let scheme = auth
            .split_whitespace()
            .next()
            .unwrap_or_default()
            .to_string();
        causes.push(format!(
            "the follow-up carries an Authorization header ({scheme} ...) next to the presigned query; S3 rejects two authentication mechanisms"
        ));
        fixes.push(
            "do not forward the registry's Authorization header to the presigned URL".to_string(),
        );
    }
    if let Some(resp) = resp {
        let body = body_of(resp);
        match parse_s3_error(&body) {
            Some(e) if !e.code.is_empty() => {
                let mut c = format!("S3 says {}", e.code);
                if !e.message.is_empty() {
                    c.push_str(&format!(": \"{}\"", e.message));
                }
                causes.push(c);
            }
            _ if method == "HEAD" => {
                causes.push(format!(
                    "a HEAD response has no body, so S3's error code is not in the capture; `curl -s {}` (a GET of the same URL, while it is valid) shows it",
                    crate::text::shell_quote(&r.location)
                ));
            }
            _ => {}
        }
    }
    (causes, fixes)
}

fn fmt_time(epoch: i64) -> String {
    let rem = epoch.rem_euclid(86_400);
    let (y, m, d) = super::kit::time::civil_from_days(epoch.div_euclid(86_400));
    format!(
        "{y:04}-{m:02}-{d:02} {:02}:{:02}:{:02} UTC",
        rem / 3600,
        (rem % 3600) / 60,
        rem % 60
    )
}

impl PresignedUrl403 {
    /// A redirect whose time has come: refused (say why), followed up without refusal (healthy:
    /// forget it), or not followed at all in this capture (say so).
    fn decide(r: &Redirect, out: &mut Vec<Finding>) {
        if r.refused_at.is_some() {
            Self::emit_refused(r, out);
        } else if r.follow_ups.is_empty() {
            Self::emit_no_follow_up(r, out);
        }
    }

    fn emit_refused(r: &Redirect, out: &mut Vec<Finding>) {
        let refused: Vec<&FollowUp> = r
            .follow_ups
            .iter()
            .filter(|f| matches!(f.status, 400 | 401 | 403))
            .collect();
        let Some(key) = refused
            .iter()
            .filter_map(|f| f.ex.response.as_ref().map(|m| m.frame))
            .min()
        else {
            return;
        };
        let mut evidence = redirect_evidence(r);
        let mut all_causes: Vec<String> = Vec::new();
        let mut all_fixes: Vec<String> = Vec::new();
        for f in &refused {
            evidence.extend(named(
                exchange_evidence(&f.ex, "follow-up to the presigned URL", "refused"),
                f.ex.server,
                "S3 endpoint",
            ));
            let (c, x) = causes(r, f);
            for c in c {
                if !all_causes.contains(&c) {
                    all_causes.push(c);
                }
            }
            for x in x {
                if !all_fixes.contains(&x) {
                    all_fixes.push(x);
                }
            }
        }
        let req = r.ex.request.as_ref();
        let statuses: Vec<String> = refused
            .iter()
            .map(|f| f.status.to_string())
            .collect::<std::collections::BTreeSet<_>>()
            .into_iter()
            .collect();
        let mut detail = format!(
            "{} answered {} from {} with {} to a presigned S3 URL at {}; the follow-up request{} to that URL {} refused {}.",
            r.ex.server,
            req.map(|m| request_line(m, 80)).unwrap_or_default(),
            r.ex.client.ip(),
            r.ex.response.as_ref().and_then(|m| m.status()).unwrap_or(0),
            r.url.authority(),
            if refused.len() > 1 { "s" } else { "" },
            if refused.len() > 1 { "were" } else { "was" },
            statuses.join("/"),
        );
        if all_causes.is_empty() {
            detail.push_str(" The packets do not show why (no expiry, skew, Host, method or header difference; no S3 error code).");
        } else {
            detail.push_str(" What the packets show: ");
            detail.push_str(&all_causes.join("; "));
            detail.push('.');
        }
        let mut remediation = String::new();
        if !all_fixes.is_empty() {
            remediation.push_str("Fix the cause: ");
            remediation.push_str(&all_fixes.join("; "));
            remediation.push_str(". ");
        }
        remediation.push_str(
            "Or stop redirecting blob downloads to S3, so the registry serves them itself: distribution \
             `storage.redirect.disable: true` (`REGISTRY_STORAGE_REDIRECT_DISABLE=true`), Harbor \
             `storage_service.redirect.disable: true`, Harbor Helm chart `persistence.imageChartStorage.disableredirect: true`.",
        );
        out.push(
            FindingDraft {
                rule: INFO.id,
                severity: INFO.severity,
                key_frame: key,
                evidence,
                title: format!(
                    "Presigned S3 URL from a {} redirect refused with {}",
                    r.ex.response.as_ref().and_then(|m| m.status()).unwrap_or(0),
                    statuses.join("/")
                ),
                detail,
                remediation,
                identifier: None,
                time: secs(r.ts),
            }
            .build(),
        );
    }

    fn emit_no_follow_up(r: &Redirect, out: &mut Vec<Finding>) {
        let Some(resp) = &r.ex.response else {
            return;
        };
        let evidence = redirect_evidence(r);
        out.push(FindingDraft {
rule: INFO.id,
severity: Severity::Info,
key_frame: resp.frame,
evidence,
title: format!("Redirect to a presigned S3 URL at {}; the follow-up is not in this capture", r.url.authority()),
detail: format!(
                "{} redirected {} from {} to a presigned S3 URL at {}. The client sends its follow-up request straight to {}, \
                 not through {}, so this capture (taken where the registry's traffic is) cannot show whether it succeeded.",
                r.ex.server,
                r.ex.request.as_ref().map(|m| request_line(m, 80)).unwrap_or_default(),
                r.ex.client.ip(),
                r.url.authority(),
                r.url.authority(),
                r.ex.server,
            ),
remediation: format!(
                "To see the follow-up, capture on the client {} (or on the path from it to {}), e.g. \
                 `tcpdump -i any -w client.pcap host {}`, and run capdiag on that capture.",
                r.ex.client.ip(),
                r.url.authority(),
                r.url.host
            ),
identifier: None,
time: secs(r.ts),
}
.build());
    }
}

impl Rule for PresignedUrl403 {
    fn info(&self) -> &'static RuleInfo {
        &INFO
    }

    fn interest(&self) -> Interest {
        Interest::STATUS_3XX | Interest::QUERY.when(!self.redirects.is_empty())
    }

    fn on_exchange(&mut self, ex: &Exchange, _out: &mut Vec<Finding>) {
        if let Some((url, location, signed)) = redirect_of(ex) {
            let ts = ex.response.as_ref().map_or(0, |m| m.end_ts);
            self.redirects.push(Redirect {
                ex: ex.clone(),
                url,
                location,
                signed,
                follow_ups: Vec::new(),
                refused_at: None,
                ts,
            });
            return;
        }
        let Some(req) = &ex.request else {
            return;
        };
        if self.redirects.is_empty() || req.uri().is_none_or(|u| memchr::memchr(b'?', u).is_none())
        {
            return;
        }
        let target = target_path_query(&lossless(req.uri().unwrap_or_default()));
        let Some(r) = self
            .redirects
            .iter_mut()
            .rev()
            .find(|r| r.url.path_query == target)
        else {
            return;
        };
        let status = ex.response.as_ref().and_then(|m| m.status()).unwrap_or(0);
        if r.follow_ups.len() < 16 {
            r.follow_ups.push(FollowUp {
                ex: ex.clone(),
                status,
            });
        } else {
            self.follow_ups_dropped += 1;
        }
        if matches!(status, 400 | 401 | 403) && r.refused_at.is_none() {
            r.refused_at = Some(ex.response.as_ref().map_or(req.end_ts, |m| m.end_ts));
        }
    }

    fn next_deadline(&self) -> Option<TimestampNs> {
        self.redirects.next()
    }

    fn on_tick(&mut self, now: TimestampNs, out: &mut Vec<Finding>) {
        for r in self.redirects.take_due(now) {
            Self::decide(&r, out);
        }
    }

    fn finish(&mut self, out: &mut Vec<Finding>) {
        for r in self.redirects.drain() {
            Self::decide(&r, out);
        }
    }

    fn state_dropped(&self) -> u64 {
        self.redirects.dropped() + self.follow_ups_dropped
    }
}

#[cfg(test)]
mod tests {
    use super::fmt_time;

    #[test]
    fn time_format() {
        assert_eq!(fmt_time(0), "1970-01-01 00:00:00 UTC");
        assert_eq!(fmt_time(951_868_800 + 3661), "2000-03-01 01:01:01 UTC");
    }
}

#[cfg(test)]
mod cause_tests {
    use super::*;
    use crate::rules::testing::exchange;

    const LOC: &str = "http://s3.example:9000/b/k?X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential=AK%2F20261125%2Fus-east-1%2Fs3%2Faws4_request&X-Amz-Date=20261125T120000Z&X-Amz-Expires=1200&X-Amz-SignedHeaders=host&X-Amz-Signature=ab12";
    /// 2026-11-25 12:00:00 UTC.
    const SIGNED: i64 = 1_795_608_000;

    /// The registry's 307 to the presigned URL `LOC`, at frame 4.
    fn redirect() -> Exchange {
        exchange(
            "10.0.0.1:1000",
            "10.0.0.2:5000",
            0,
            4,
            SIGNED,
            b"GET /v2/a/blobs/sha256:1 HTTP/1.1\r\nHost: reg:5000\r\n\r\n",
            format!(
                "HTTP/1.1 307 Temporary Redirect\r\nLocation: {LOC}\r\nContent-Length: 0\r\n\r\n"
            )
            .as_bytes(),
        )
    }

    fn run(follow_up_at: i64, follow_req: &str, resp: &str) -> Vec<Finding> {
        let mut r = PresignedUrl403::default();
        let mut out = Vec::new();
        r.on_exchange(&redirect(), &mut out);
        let follow = exchange(
            "10.0.0.1:1001",
            "10.0.0.3:9000",
            1,
            10,
            follow_up_at,
            follow_req.as_bytes(),
            resp.as_bytes(),
        );
        r.on_exchange(&follow, &mut out);
        r.finish(&mut out);
        out
    }

    /// A presigned URL fetched again and again keeps its first 16 follow-ups; the rest are
    /// counted as dropped rule state.
    #[test]
    fn follow_ups_beyond_the_limit_are_counted() {
        let mut r = PresignedUrl403::default();
        let mut out = Vec::new();
        r.on_exchange(&redirect(), &mut out);
        let req = format!(
            "GET {} HTTP/1.1\r\nHost: s3.example:9000\r\n\r\n",
            LOC.strip_prefix("http://s3.example:9000").unwrap_or(LOC)
        );
        for i in 0..20u64 {
            let follow = exchange(
                "10.0.0.1:1001",
                "10.0.0.3:9000",
                1 + i,
                10 + 4 * i,
                SIGNED + 1,
                req.as_bytes(),
                b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n",
            );
            r.on_exchange(&follow, &mut out);
        }
        assert_eq!(r.state_dropped(), 4);
    }

    const XML_403: &str = "HTTP/1.1 403 Forbidden\r\nContent-Type: application/xml\r\nContent-Length: 62\r\n\r\n<Error><Code>AccessDenied</Code><Message>x</Message></Error>\r\n";

    #[test]
    fn expired_url() {
        let f = run(
            SIGNED + 1300,
            "GET /b/k?X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential=AK%2F20261125%2Fus-east-1%2Fs3%2Faws4_request&X-Amz-Date=20261125T120000Z&X-Amz-Expires=1200&X-Amz-SignedHeaders=host&X-Amz-Signature=ab12 HTTP/1.1\r\nHost: s3.example:9000\r\n\r\n",
            XML_403,
        );
        assert_eq!(f.len(), 1);
        assert!(
            f[0].detail.contains("the URL had expired") && f[0].detail.contains("1m 40s later"),
            "{}",
            f[0].detail
        );
        assert!(f[0].detail.contains("S3 says AccessDenied"));
        assert_eq!(
            (f[0].key_frame, f[0].frames.as_slice()),
            (12, &[4, 6, 10, 12][..])
        );
    }

    #[test]
    fn clock_skew_method_and_authorization() {
        let q = LOC.split_once("9000").map(|(_, p)| p).unwrap_or_default();
        let req = format!(
            "HEAD {q} HTTP/1.1\r\nHost: s3.example:9000\r\nAuthorization: Bearer tok\r\n\r\n"
        );
        let resp = "HTTP/1.1 403 Forbidden\r\nDate: Wed, 25 Nov 2026 11:30:00 GMT\r\nContent-Length: 0\r\n\r\n";
        let f = run(SIGNED + 10, &req, resp);
        let d = &f[0].detail;
        assert!(
            d.contains("clock skew") && d.contains("30m 0s ahead of S3's clock"),
            "{d}"
        );
        assert!(
            d.contains("the method changed: the redirect answered a GET, the follow-up is a HEAD"),
            "{d}"
        );
        assert!(d.contains("Authorization header (Bearer ...)"), "{d}");
        assert!(d.contains("HEAD response has no body"), "{d}");
        assert!(
            f[0].remediation.contains("NTP")
                && f[0].remediation.contains("storage.redirect.disable")
        );
    }

    #[test]
    fn healthy_follow_up_is_not_a_finding() {
        let q = LOC.split_once("9000").map(|(_, p)| p).unwrap_or_default();
        let f = run(
            SIGNED + 1,
            &format!("GET {q} HTTP/1.1\r\nHost: s3.example:9000\r\n\r\n"),
            "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n",
        );
        assert!(f.is_empty(), "{f:?}");
    }
}
