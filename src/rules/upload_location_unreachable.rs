//! `upload-location-unreachable`: the registry answers a blob upload request (`POST`, `PATCH`
//! of `/v2/<name>/blobs/uploads/...`) with a `Location` that names another host, port or
//! scheme than the client used, and the client then cannot connect there: its SYNs are reset,
//! unanswered, or answered by an ICMP unreachable. The cause is the URL, not the network: a
//! proxy that passes `Host` without the port (`proxy_set_header Host $host`), a wrong
//! `X-Forwarded-Proto`, or a registry `http.host` that names an internal address.

use super::kit::attempts::attempt_evidence;
use super::kit::referral::{Referral, Referrals, failure_words};
use super::kit::{Url, exchange_evidence, request_line, secs, target_path};
use super::{Interest, Rule, RuleInfo};
use crate::capture::TimestampNs;
use crate::finding::{Finding, FindingDraft, Severity, name_server};
use crate::flow::ConnectionAttempt;
use crate::http::Exchange;
use crate::text::{lossless, shorten};

pub static INFO: RuleInfo = RuleInfo {
    id: "upload-location-unreachable",
    severity: Severity::Error,
    title: "A blob upload's Location names an endpoint the client cannot reach",
    doc: include_str!("../../docs/rules/upload-location-unreachable.md"),
    suppress_for_ns: None,
    explained_by_others: false,
};

/// How the Location differs from what the client used.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mismatch {
    /// Same host, the default port (none written) where the client used another.
    PortDropped,
    /// Same host, another port.
    Port,
    /// `https` for `http`, or the other way.
    Scheme,
    /// Another host.
    Host,
}

/// What the client used: the `Host` it sent (or the address it connected to).
#[derive(Debug)]
struct Used {
    authority: String,
    mismatch: Mismatch,
}

#[derive(Default)]
pub struct UploadLocationUnreachable {
    uploads: Referrals<Used>,
}

/// `host[:port]` split, lower-cased, with the port (`default` when absent).
fn host_port(authority: &str, default: u16) -> (String, u16) {
    let a = authority.to_ascii_lowercase();
    if let Some(v6) = a.strip_prefix('[') {
        let (h, rest) = v6.split_once(']').unwrap_or((v6, ""));
        let port = rest
            .strip_prefix(':')
            .and_then(|p| p.parse().ok())
            .unwrap_or(default);
        return (h.to_string(), port);
    }
    match a.rsplit_once(':') {
        Some((h, p)) if !h.contains(':') => (h.to_string(), p.parse().unwrap_or(default)),
        _ => (a, default),
    }
}

/// How `url` differs from the endpoint a plain-HTTP client reached as `used` (its `Host`).
fn mismatch(url: &Url, used: &str) -> Option<Mismatch> {
    let (host, port) = host_port(used, 80);
    if url.scheme != "http" {
        return Some(Mismatch::Scheme);
    }
    if !url.host.eq_ignore_ascii_case(&host) {
        return Some(Mismatch::Host);
    }
    if url.port != port {
        return Some(if url.port == 80 {
            Mismatch::PortDropped
        } else {
            Mismatch::Port
        });
    }
    None
}

impl UploadLocationUnreachable {
    fn report(u: &mut Referral<Used>, a: &ConnectionAttempt, out: &mut Vec<Finding>) {
        u.reported = true;
        let (Some(req), Some(resp)) = (&u.ex.request, &u.ex.response) else {
            return;
        };
        let location = format!("{}://{}{}", u.url.scheme, u.url.authority(), u.url.path());
        let location = shorten(&location, 120);
        let mut evidence = exchange_evidence(&u.ex, "upload request", "answer with the Location");
        evidence.extend(attempt_evidence(
            a,
            format!("SYN to the Location's {} from {}", a.server, a.client),
            "reset: nothing listens there",
        ));
        name_server(&mut evidence, u.ex.server, "registry");
        name_server(&mut evidence, a.server, "upload location");
        let used = &u.data.authority;
        let why = match u.data.mismatch {
            Mismatch::PortDropped => format!(
                "the Location has no port (so port {}) where the client used `{used}`: the registry built the URL from a `Host` without \
                 the port, which is what a proxy in front of it sends with nginx's `proxy_set_header Host $host`",
                u.url.port
            ),
            Mismatch::Port => format!(
                "the Location names port {} where the client used `{used}`: the registry's `http.host`, or the `Host`/`X-Forwarded-Port` \
                 a proxy passes, names another port",
                u.url.port
            ),
            Mismatch::Scheme => format!(
                "the Location is `{}` where the client spoke plain HTTP to `{used}`: the registry's `http.host`, or the \
                 `X-Forwarded-Proto` a proxy passes, names another scheme",
                u.url.scheme
            ),
            Mismatch::Host => format!(
                "the Location names the host `{}` where the client used `{used}`: the registry's `http.host` (or the `Host`/\
                 `X-Forwarded-Host` a proxy passes) names an address the client does not use",
                u.url.host
            ),
        };
        let detail = format!(
            "{} answered {} (frame {}) from {} with {} and `Location: {location}` (frame {}); {why}. The client followed it to {}: {}. \
             The upload cannot go on: the client fails with an error such as `dial tcp {}: connect: connection refused` or an i/o timeout.",
            u.ex.server,
            request_line(req, 80),
            req.frame,
            u.ex.client,
            resp.status().unwrap_or(0),
            resp.frame,
            a.server,
            failure_words(a),
            a.server,
        );
        let fix = match u.data.mismatch {
            Mismatch::PortDropped => {
                "In the proxy in front of the registry, pass the `Host` with its port: nginx `proxy_set_header Host $http_host;` (not \
                 `$host`), HAProxy/Traefik/ingress controllers keep it by default. "
            }
            Mismatch::Scheme => {
                "In the proxy in front of the registry, pass the scheme the client used: nginx `proxy_set_header X-Forwarded-Proto \
                 $scheme;` (and `X-Forwarded-Port`), and make the registry's `http.host` use that scheme. "
            }
            Mismatch::Port | Mismatch::Host => {
                "Set the registry's `http.host` (`REGISTRY_HTTP_HOST`) to the URL clients use (Harbor: `external_url` in harbor.yml, \
                 Helm `externalURL`), and have the proxy pass `Host $http_host`. "
            }
        };
        let remediation = format!(
            "{fix}Or let the registry send relative upload URLs: distribution's `http.relativeurls: true` \
             (`REGISTRY_HTTP_RELATIVEURLS=true`; Harbor Helm `registry.relativeurls: true`), which every client resolves against the \
             URL it used. Verify with `curl -si -X POST http://{used}/v2/<name>/blobs/uploads/`: the `Location` must be relative or \
             name `{used}`."
        );
        out.push(
            FindingDraft {
                rule: INFO.id,
                severity: INFO.severity,
                key_frame: resp.frame,
                evidence,
                title: format!(
                    "Upload Location {} is unreachable from {} (it used {used})",
                    u.url.authority(),
                    u.client
                ),
                detail,
                remediation,
                identifier: None,
                time: secs(u.ts),
            }
            .build(),
        );
    }
}

impl Rule for UploadLocationUnreachable {
    fn info(&self) -> &'static RuleInfo {
        &INFO
    }

    fn interest(&self) -> Interest {
        Interest::UPLOAD_PATH | Interest::ATTEMPT | Interest::ATTEMPT_PROGRESS
    }

    fn on_exchange(&mut self, ex: &Exchange, _out: &mut Vec<Finding>) {
        let (Some(req), Some(resp)) = (&ex.request, &ex.response) else {
            return;
        };
        if !matches!(resp.status(), Some(201 | 202 | 301..=308)) {
            return;
        }
        let path = target_path(req.uri().unwrap_or_default());
        if memchr::memmem::find(path, b"/blobs/uploads/").is_none() {
            return;
        }
        let Some(location) = resp.header("location") else {
            return;
        };
        let Some(url) = Url::parse(&lossless(location)) else {
            return; // relative: resolved against what the client used
        };
        let used = req
            .header("host")
            .map(lossless)
            .unwrap_or_else(|| ex.server.to_string());
        let Some(mismatch) = mismatch(&url, &used) else {
            return;
        };
        let client = ex.client.ip();
        let authority = url.authority();
        if self.uploads.iter().any(|u| {
            u.client == client && u.url.scheme == url.scheme && u.url.authority() == authority
        }) {
            return;
        }
        self.uploads.push(Referral::new(
            ex,
            url,
            resp.end_ts,
            Used {
                authority: used,
                mismatch,
            },
        ));
    }

    fn on_attempt_progress(&mut self, a: &ConnectionAttempt, _out: &mut Vec<Finding>) {
        self.uploads.on_attempt_progress(a);
    }

    fn on_attempt(&mut self, a: &ConnectionAttempt, out: &mut Vec<Finding>) {
        self.uploads.on_attempt(a, |u, a| Self::report(u, a, out));
    }

    fn next_deadline(&self) -> Option<TimestampNs> {
        self.uploads.next_deadline()
    }

    fn on_tick(&mut self, now: TimestampNs, out: &mut Vec<Finding>) {
        self.uploads.on_tick(now, |u, a| Self::report(u, a, out));
    }

    fn finish(&mut self, out: &mut Vec<Finding>) {
        self.uploads.finish(|u, a| Self::report(u, a, out));
    }

    fn state_dropped(&self) -> u64 {
        self.uploads.dropped
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::flow::Outcome;
    use crate::rules::testing::exchange;

    fn upload(location: &str) -> (UploadLocationUnreachable, Vec<Finding>) {
        let mut r = UploadLocationUnreachable::default();
        let mut out = Vec::new();
        let resp = format!(
            "HTTP/1.1 202 Accepted\r\nLocation: {location}\r\nDocker-Upload-Uuid: u1\r\nContent-Length: 0\r\n\r\n"
        );
        r.on_exchange(
            &exchange(
                "10.0.0.1:40000",
                "10.0.0.2:5000",
                0,
                4,
                0,
                b"POST /v2/a/blobs/uploads/ HTTP/1.1\r\nHost: 10.0.0.2:5000\r\n\r\n",
                resp.as_bytes(),
            ),
            &mut out,
        );
        (r, out)
    }

    fn refused(server: &str) -> ConnectionAttempt {
        let mut a = ConnectionAttempt::new(
            1,
            "10.0.0.1:40001".parse().unwrap_or_else(|_| unreachable!()),
            server.parse().unwrap_or_else(|_| unreachable!()),
            9,
            0,
        );
        a.rst_frame = Some(10);
        a.outcome = Outcome::Refused;
        a
    }

    #[test]
    fn a_dropped_port_then_a_refused_connection() {
        let (mut r, mut out) = upload("http://10.0.0.2/v2/a/blobs/uploads/u1?_state=x");
        r.on_attempt(&refused("10.0.0.2:80"), &mut out);
        assert_eq!(out.len(), 1);
        let f = &out[0];
        assert_eq!(f.key_frame, 6);
        assert_eq!(f.frames, [4, 6, 9, 10]);
        assert!(f.detail.contains("no port (so port 80)"), "{}", f.detail);
        assert!(
            f.remediation.starts_with(
                "In the proxy in front of the registry, pass the `Host` with its port"
            )
        );
    }

    #[test]
    fn relative_and_matching_locations_are_not_watched() {
        for loc in [
            "/v2/a/blobs/uploads/u1?_state=x",
            "http://10.0.0.2:5000/v2/a/blobs/uploads/u1",
            "HTTP://10.0.0.2:5000/v2/a/blobs/uploads/u1",
        ] {
            let (mut r, mut out) = upload(loc);
            r.on_attempt(&refused("10.0.0.2:5000"), &mut out);
            r.finish(&mut out);
            assert!(out.is_empty(), "{loc}");
        }
    }

    #[test]
    fn mismatches() {
        let u = |s: &str| Url::parse(s).unwrap_or_else(|| unreachable!());
        assert_eq!(
            mismatch(&u("http://r/v2/"), "r:5000"),
            Some(Mismatch::PortDropped)
        );
        assert_eq!(
            mismatch(&u("http://r:5001/v2/"), "r:5000"),
            Some(Mismatch::Port)
        );
        assert_eq!(
            mismatch(&u("https://r:5000/v2/"), "r:5000"),
            Some(Mismatch::Scheme)
        );
        assert_eq!(
            mismatch(&u("http://internal:5000/v2/"), "r:5000"),
            Some(Mismatch::Host)
        );
        assert_eq!(mismatch(&u("http://R:80/v2/"), "r"), None);
        assert_eq!(
            mismatch(&u("http://[fd00::1]:5000/v2/"), "[fd00::1]:5000"),
            None
        );
    }
}
