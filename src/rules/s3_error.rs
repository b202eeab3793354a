//! `s3-error`: an S3 request answered with one of S3's XML errors that is not part of normal
//! operation: a signature that does not match, an unknown access key, access denied, a missing
//! bucket, a wrong region, expired credentials, throttling, S3's own failures. `NoSuchKey`
//! and `NoSuchUpload` are normal (registries probe for what is not there) and not reported, nor
//! is `RequestTimeTooSkewed` or any error to a request signed more than 15 minutes from the
//! answer's `Date` (`s3-clock-skew`'s), nor a presigned URL's error (`presigned-url-403`'s).
//!
//! Grouped per S3 client, endpoint and error code (an SDK's retries, and every request that
//! fails for the same reason, make one finding), with the 5xx the S3 client (the registry)
//! answered its own client around them, as `s3-error-not-xml` does.

use super::kit::{S3Group, S3Groups, body_of, exchange_evidence, request_line, secs};
use super::s3::{Clocks, S3Error, is_s3_request, parse_s3_error};
use super::{Interest, Rule, RuleInfo};
use crate::capture::TimestampNs;
use crate::finding::{Evidence, Finding, FindingDraft, Severity};
use crate::http::Exchange;

pub static INFO: RuleInfo = RuleInfo {
    id: "s3-error",
    severity: Severity::Error,
    title: "S3 answered an S3 client with an error: credentials, permissions, bucket, throttling",
    doc: include_str!("../../docs/rules/s3-error.md"),
    suppress_for_ns: None,
    explained_by_others: false,
};

/// Codes that are part of normal operation (a registry checks for blobs and uploads that are
/// not there), and codes other rules own.
const NOT_REPORTED: [&str; 4] = [
    "NoSuchKey",
    "NoSuchUpload",
    "NotModified",
    "RequestTimeTooSkewed",
];

/// What one error answer leaves in a group.
#[derive(Debug, Clone)]
struct Answer {
    evidence: Vec<Evidence>,
    request: String,
    status: u16,
    error: S3Error,
    resp_frame: u64,
}

#[derive(Default)]
pub struct S3ErrorRule {
    groups: S3Groups<String, Answer>,
}

/// The severity of an S3 error code: throttling and S3's own transient failures are warnings
/// (SDKs retry them), the rest errors.
fn severity(code: &str) -> Severity {
    match code {
        "SlowDown" | "RequestTimeout" | "ServiceUnavailable" | "InternalError"
        | "OperationAborted" => Severity::Warning,
        _ => Severity::Error,
    }
}

/// What the code means, and what to change, cause first.
fn meaning(code: &str, endpoint: &str) -> (&'static str, String) {
    match code {
        "SignatureDoesNotMatch" => (
            "the request's signature does not match what S3 computes from the request it received with the secret key of the access key",
            "Check the secret key the registry signs with: distribution `storage.s3.secretkey` (`REGISTRY_STORAGE_S3_SECRETKEY`), \
             Harbor `storage_service.s3.secretkey`, and that it belongs to the access key. If the key is right, something between \
             the registry and S3 changes what was signed: a proxy that rewrites `Host` (keep the port: nginx `proxy_set_header \
             Host $http_host`) or the path (no rewrite, no URI part in `proxy_pass`), or a bucket addressed virtual-host style \
             through an endpoint that expects path style. A capture on both sides of that proxy shows which header changed."
                .to_string(),
        ),
        // `NotSignedUp`: what s3s answers for a key it does not know.
        "InvalidAccessKeyId" | "NotSignedUp" => (
            "the access key is unknown to this S3 endpoint",
            format!(
                "Set the registry's access key (`storage.s3.accesskey`, `REGISTRY_STORAGE_S3_ACCESSKEY`) to a key of the account \
                 that owns the bucket, and check that `storage.s3.regionendpoint` ({endpoint}) is the S3 service that key belongs \
                 to (not another MinIO/Ceph instance or another cloud's endpoint)."
            ),
        ),
        "AccessDenied" | "AllAccessDisabled" | "AccountProblem" => (
            "the credentials are valid but not allowed to do this",
            "Grant the registry's credentials what distribution needs on the bucket and its objects: `s3:ListBucket`, \
             `s3:GetBucketLocation`, `s3:ListBucketMultipartUploads`, `s3:PutObject`, `s3:GetObject`, `s3:DeleteObject`, \
             `s3:ListMultipartUploadParts`, `s3:AbortMultipartUpload` (bucket policy, IAM policy, MinIO policy); check that \
             a bucket policy or a KMS key policy does not deny them."
                .to_string(),
        ),
        "NoSuchBucket" => (
            "the bucket does not exist on this endpoint",
            format!(
                "Create the bucket, or correct `storage.s3.bucket` and `storage.s3.regionendpoint` ({endpoint}) so that they name \
                 an existing bucket on the S3 service the registry should use."
            ),
        ),
        "AuthorizationHeaderMalformed" | "PermanentRedirect" | "IllegalLocationConstraintException" => (
            "the request was signed for, or sent to, another region than the bucket's",
            "Set `storage.s3.region` to the bucket's region (and `regionendpoint` to that region's endpoint)."
                .to_string(),
        ),
        "ExpiredToken" | "InvalidToken" | "TokenRefreshRequired" => (
            "the temporary credentials (session token) have expired or are not valid",
            "Refresh the registry's temporary credentials: with IRSA / a pod identity or an instance profile, let the SDK \
             refresh them instead of static `accesskey`/`secretkey`/session tokens in the configuration."
                .to_string(),
        ),
        "SlowDown" | "ServiceUnavailable" => (
            "S3 is throttling the client",
            "S3 limits requests per prefix: lower the request rate (fewer concurrent pushes and pulls, a pull-through cache in \
             front of the registry), and let the SDK retry with back-off; on MinIO/Ceph check the server's load and limits."
                .to_string(),
        ),
        "InternalError" | "RequestTimeout" | "OperationAborted" => (
            "the S3 service failed to handle the request",
            "Retry; if it persists, look at the S3 service's own logs and health (MinIO, Ceph RGW), and at the network between \
             the registry and it (a `RequestTimeout` means S3 waited for the request's body in vain)."
                .to_string(),
        ),
        _ => (
            "S3 refused the request",
            "Read the error's `Message`; check the registry's S3 storage configuration (`storage.s3.*`) against the bucket."
                .to_string(),
        ),
    }
}

impl S3ErrorRule {
    fn emit(g: S3Group<String, Answer>, out: &mut Vec<Finding>) {
        let Some(first) = g.answers.first() else {
            return;
        };
        let code = &g.key;
        let mut evidence: Vec<Evidence> =
            g.answers.iter().flat_map(|a| a.evidence.clone()).collect();
        let mut requests: Vec<&str> = g.answers.iter().map(|a| a.request.as_str()).collect();
        requests.dedup();
        let mut statuses: Vec<u16> = g.answers.iter().map(|a| a.status).collect();
        statuses.sort_unstable();
        statuses.dedup();
        let statuses: Vec<String> = statuses.iter().map(u16::to_string).collect();
        let endpoint = g.endpoint.to_string();
        let (means, fix) = meaning(code, &endpoint);
        let times = if g.count > 1 {
            format!(
                "{} requests ({} distinct) were answered",
                g.count,
                requests.len()
            )
        } else {
            "a request was answered".to_string()
        };
        let msg = if first.error.message.is_empty() {
            String::new()
        } else {
            format!(" (\"{}\")", crate::text::shorten(&first.error.message, 160))
        };
        let mut detail = format!(
            "{} made S3 requests to {}: {times} {} `{code}`{msg}, first {} at frame {}: {means}.",
            g.s3_client,
            g.endpoint,
            statuses.join("/"),
            first.request,
            first.resp_frame,
        );
        g.tell_caused(
            "answered",
            " No 5xx from the S3 client to its own client was seen in the capture around that time (a capture of the \
             registry's clients alone does not show its S3 traffic: capture on the registry's host, `-i any`).",
            &mut detail,
            &mut evidence,
        );
        out.push(
            FindingDraft {
                rule: INFO.id,
                severity: severity(code),
                key_frame: first.resp_frame,
                evidence,
                title: format!(
                    "S3 at {} answered {} {} `{code}`",
                    g.endpoint,
                    g.s3_client,
                    statuses.join("/")
                ),
                detail,
                remediation: fix,
                identifier: None,
                time: secs(g.first_ts),
            }
            .build(),
        );
    }
}

impl Rule for S3ErrorRule {
    fn info(&self) -> &'static RuleInfo {
        &INFO
    }

    fn interest(&self) -> Interest {
        Interest::S3_REFUSED | Interest::STATUS_5XX
    }

    fn on_exchange(&mut self, ex: &Exchange, out: &mut Vec<Finding>) {
        if let (Some(req), Some(resp)) = (&ex.request, &ex.response)
            && resp.status().is_some_and(|s| s >= 300 && s != 304)
            && resp.complete
            && is_s3_request(req)
        {
            // Signed in its query, not its `Authorization`: a presigned URL.
            let is_presigned = req.header("authorization").is_none();
            if let Some(error) = parse_s3_error(&body_of(resp))
                && !error.code.is_empty()
                && !NOT_REPORTED.contains(&error.code.as_str())
                && !is_presigned
                // A request signed too far from the answer's clock is `s3-clock-skew`'s.
                && !Clocks::of(req, resp).too_skewed()
            {
                let answer = Answer {
                    evidence: super::kit::named(
                        exchange_evidence(ex, "S3 request", "S3 error"),
                        ex.server,
                        "S3 endpoint",
                    ),
                    request: request_line(req, 80),
                    status: resp.status().unwrap_or(0),
                    resp_frame: resp.frame,
                    error: error.clone(),
                };
                if let Some(g) = self.groups.add(ex, error.code, answer) {
                    Self::emit(g, out);
                }
                return;
            }
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

    const SIGNED: &[u8] = b"GET /capdiag/docker/registry/v2/repositories/lab/small/_manifests/tags/1/current/link HTTP/1.1\r\nHost: s3:9000\r\nAuthorization: AWS4-HMAC-SHA256 Credential=AKID/20261205/us-east-1/s3/aws4_request, SignedHeaders=host, Signature=00\r\n\r\n";

    fn s3(code: &str, status: u16, f: u64) -> Exchange {
        let body = format!(
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?><Error><Code>{code}</Code><Message>m</Message></Error>"
        );
        let resp = format!(
            "HTTP/1.1 {status} X\r\nContent-Type: application/xml\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        );
        exchange(
            "10.0.0.20:40000",
            "10.0.0.40:9000",
            f,
            f,
            100,
            SIGNED,
            resp.as_bytes(),
        )
    }

    #[test]
    fn retries_make_one_finding_with_the_registrys_500() {
        let mut r = S3ErrorRule::default();
        let mut out = Vec::new();
        for f in [10, 20, 30] {
            r.on_exchange(&s3("SignatureDoesNotMatch", 403, f), &mut out);
        }
        let registry = exchange(
            "10.0.0.10:50000",
            "10.0.0.20:5000",
            40,
            40,
            100,
            b"GET /v2/lab/small/manifests/1 HTTP/1.1\r\nHost: r\r\n\r\n",
            b"HTTP/1.1 500 Internal Server Error\r\nContent-Length: 0\r\n\r\n",
        );
        r.on_exchange(&registry, &mut out);
        assert_eq!(out.len(), 1);
        let f = &out[0];
        assert_eq!(f.key_frame, 12);
        assert_eq!(f.severity, Severity::Error);
        assert!(f.detail.contains("3 requests (1 distinct)"), "{}", f.detail);
        assert!(
            f.detail.contains("answered its own client 10.0.0.10 500"),
            "{}",
            f.detail
        );
        assert!(
            f.remediation.starts_with("Check the secret key"),
            "{}",
            f.remediation
        );
    }

    #[test]
    fn normal_codes_are_not_reported_and_throttling_is_a_warning() {
        let mut r = S3ErrorRule::default();
        let mut out = Vec::new();
        r.on_exchange(&s3("NoSuchKey", 404, 10), &mut out);
        r.on_exchange(&s3("NoSuchUpload", 404, 20), &mut out);
        r.on_exchange(&s3("RequestTimeTooSkewed", 403, 25), &mut out);
        r.finish(&mut out);
        assert!(out.is_empty());
        r.on_exchange(&s3("SlowDown", 503, 30), &mut out);
        r.finish(&mut out);
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].severity, Severity::Warning);
    }
}
