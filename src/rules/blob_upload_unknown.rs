//! `blob-upload-unknown`: a request of a blob upload that was started in the capture (the
//! `POST /v2/<name>/blobs/uploads/` answered 202 with its `Docker-Upload-UUID`) is answered
//! `404 BLOB_UPLOAD_UNKNOWN` or `BLOB_UPLOAD_INVALID`: the registry that got it does not know
//! the upload, or cannot verify its `_state` token. Most often registry replicas behind a load
//! balancer that do not share their storage or their `http.secret`, the requests of one upload
//! reaching different replicas; also an upload purged or cancelled meanwhile.
//!
//! In a capture taken `-i any` on the proxy's host, the proxy's requests to each replica are
//! there too, and the finding names the backends each request of the upload reached. The copies
//! of one error (the replica's answer to the proxy, the proxy's to the client) make one finding.

use super::kit::{Bounded, Waiting, body_of, request_label, response_label, secs, target_path};
use super::{Interest, Rule, RuleInfo};
use crate::capture::TimestampNs;
use crate::finding::{Evidence, Finding, FindingDraft, Party, Severity, name_server};
use crate::http::Exchange;
use crate::text::{lossless, shorten};
use std::net::SocketAddr;

pub static INFO: RuleInfo = RuleInfo {
    id: "blob-upload-unknown",
    severity: Severity::Error,
    title: "A blob upload started in the capture is unknown (or invalid) to the registry that gets its next request",
    doc: include_str!("../../docs/rules/blob-upload-unknown.md"),
    suppress_for_ns: None,
    explained_by_others: false,
};

/// Copies of one error (through a proxy) are gathered this long before the finding is made.
const GATHER_NS: TimestampNs = 1_000_000_000;
/// Requests kept per upload for evidence (the count goes on).
const MAX_STEPS: usize = 16;
const UPLOADS: &[u8] = b"/blobs/uploads/";
/// Searches every request path for [`UPLOADS`]: built once (building a searcher costs more than
/// running it on a short path).
static FIND_UPLOADS: std::sync::LazyLock<memchr::memmem::Finder<'static>> =
    std::sync::LazyLock::new(|| memchr::memmem::Finder::new(UPLOADS));

/// A request of an upload and who answered it.
#[derive(Debug, Clone)]
struct Step {
    req_frame: u64,
    resp_frame: u64,
    stream: u64,
    method: String,
    server: SocketAddr,
    client: SocketAddr,
    status: u16,
    req_ts: TimestampNs,
    resp_ts: TimestampNs,
    req_label: String,
    resp_label: String,
}

impl Step {
    /// The request and its answer as evidence, the answer said with `code` (the registry's
    /// error code) when there is one.
    fn evidence(&self, code: &str) -> [Evidence; 2] {
        let (client, server) = (Party::client(self.client), Party::server(self.server));
        let code = if code.is_empty() {
            String::new()
        } else {
            format!(" {code}")
        };
        [
            Evidence::packet(
                self.req_frame,
                Some(self.stream),
                (client, server),
                self.req_ts,
                format!(
                    "{} of the upload ({} → {})",
                    self.method, self.client, self.server
                ),
                self.req_label.clone(),
            ),
            Evidence::packet(
                self.resp_frame,
                Some(self.stream),
                (server, client),
                self.resp_ts,
                format!("{}{code} from {}", self.status, self.server),
                if code.is_empty() {
                    self.resp_label.clone()
                } else {
                    format!("{}{code}", self.status)
                },
            ),
        ]
    }
}

#[derive(Debug)]
struct Upload {
    uuid: String,
    name: String,
    steps: Vec<Step>,
    /// The error answers (the first one, and its copies), once one came.
    errors: Vec<(Step, &'static str)>,
    error_ts: TimestampNs,
    reported: bool,
}

pub struct BlobUploadUnknown {
    uploads: Bounded<Upload>,
    /// Uploads whose error is being gathered, and when the finding is due.
    due: Waiting<(String, TimestampNs)>,
}

impl Default for BlobUploadUnknown {
    fn default() -> Self {
        BlobUploadUnknown {
            uploads: Bounded::default(),
            due: Waiting::new(|(_, at)| *at),
        }
    }
}

/// The repository name and upload id of an upload path
/// (`/v2/<name>/blobs/uploads/<uuid>?_state=...`); the id is empty for the `POST` that starts
/// one.
fn upload_path(path: &[u8]) -> Option<(String, String)> {
    let at = FIND_UPLOADS.find(path)?;
    let name = path.get(..at)?.strip_prefix(b"/v2/")?;
    let rest = path.get(at + UPLOADS.len()..)?;
    let end = rest
        .iter()
        .position(|&c| c == b'?' || c == b'/')
        .unwrap_or(rest.len());
    Some((lossless(name), lossless(rest.get(..end)?)))
}

impl BlobUploadUnknown {
    fn report_upload(&mut self, uuid: &str, out: &mut Vec<Finding>) {
        if let Some(u) = self
            .uploads
            .iter_mut()
            .find(|u| u.uuid == uuid && !u.reported)
        {
            Self::report(u, out);
        }
    }

    fn report(u: &mut Upload, out: &mut Vec<Finding>) {
        u.reported = true;
        let Some((first_err, code)) = u.errors.first().cloned() else {
            return;
        };
        let mut evidence = Vec::new();
        for s in &u.steps {
            evidence.extend(s.evidence(""));
        }
        for (s, code) in &u.errors {
            evidence.extend(s.evidence(code));
        }
        for s in u.steps.iter().chain(u.errors.iter().map(|(s, _)| s)) {
            name_server(&mut evidence, s.server, "registry");
        }
        // The client's own request came first (a proxy's request to a replica follows it).
        let Some(start) = u.steps.iter().min_by_key(|s| s.req_frame) else {
            return;
        };
        let all = || u.steps.iter().chain(u.errors.iter().map(|(s, _)| s));
        // Backends: who answered the proxy's requests (those not from the client), or, in a
        // capture of the client's side alone, who answered the client.
        let proxied = all().any(|s| s.client.ip() != start.client.ip());
        let mut backends: Vec<(SocketAddr, String, u64)> = Vec::new();
        for s in all().filter(|s| !proxied || s.client.ip() != start.client.ip()) {
            if !backends.iter().any(|(a, _, _)| *a == s.server) {
                backends.push((s.server, s.method.clone(), s.resp_frame));
            }
        }
        let accepted_by = u
            .steps
            .iter()
            .filter(|s| s.method == "POST")
            .map(|s| format!("{} from {} at frame {}", s.status, s.server, s.resp_frame))
            .collect::<Vec<_>>()
            .join(", and ");
        let mut detail = format!(
            "The blob upload {} of `{}` was started by {} at frame {} and accepted ({accepted_by}); its {} at frame {} was \
             answered {} `{code}` by {} (frame {}).",
            shorten(&u.uuid, 40),
            shorten(&u.name, 80),
            start.client,
            start.req_frame,
            first_err.method,
            first_err.req_frame,
            first_err.status,
            first_err.server,
            first_err.resp_frame,
        );
        if u.errors.len() > 1 {
            detail.push_str(&format!(
                " The same answer reached the client through the proxy (frame {}).",
                u.errors.last().map_or(0, |(s, _)| s.resp_frame)
            ));
        }
        if backends.len() > 1 {
            let list: Vec<String> = backends
                .iter()
                .map(|(a, m, f)| format!("{a} ({m}, frame {f})"))
                .collect();
            detail.push_str(&format!(
                " Requests of this upload reached different backends: {}: registry replicas behind a load balancer, each \
                 knowing only the uploads it started (or its own `http.secret`).",
                list.join(", ")
            ));
        }
        let (meaning, fix) = if code == "BLOB_UPLOAD_INVALID" {
            (
                " The registry could not verify the upload's `_state` token: it was signed with another `http.secret`.",
                "Give every registry replica the same `http.secret` (`REGISTRY_HTTP_SECRET`): a replica without one makes up its \
                 own at start, and rejects the `_state` of uploads another replica started. Harbor and the distribution Helm \
                 chart set one shared secret; check it reaches every pod.",
            )
        } else {
            (
                " The registry that got it has no such upload: the replicas do not share storage (each its own filesystem), or \
                 the upload was purged (`storage.maintenance.uploadpurging`) or cancelled meanwhile.",
                "Put every registry replica on the same storage (one S3 bucket, or one shared volume), or send all requests of a \
                 client to one replica (nginx `ip_hash` or `hash $remote_addr`; ingress session affinity by client IP — not by \
                 cookie, which docker does not keep). Check `storage.maintenance.uploadpurging` does not purge uploads younger \
                 than the longest push.",
            )
        };
        detail.push_str(meaning);
        detail.push_str(" The push fails (docker: `blob upload unknown` / `blob upload invalid`).");
        out.push(
            FindingDraft {
                rule: INFO.id,
                severity: INFO.severity,
                key_frame: first_err.resp_frame,
                evidence,
                title: format!(
                    "Blob upload {} answered {} `{code}` by {}",
                    shorten(&u.uuid, 13),
                    first_err.status,
                    first_err.server
                ),
                detail,
                remediation: fix.to_string(),
                identifier: None,
                time: secs(u.error_ts),
            }
            .build(),
        );
    }
}

impl Rule for BlobUploadUnknown {
    fn info(&self) -> &'static RuleInfo {
        &INFO
    }

    fn interest(&self) -> Interest {
        Interest::UPLOAD_PATH
    }

    fn on_exchange(&mut self, ex: &Exchange, out: &mut Vec<Finding>) {
        let (Some(req), Some(resp)) = (&ex.request, &ex.response) else {
            return;
        };
        let path = target_path(req.uri().unwrap_or_default());
        let Some((name, path_uuid)) = upload_path(path) else {
            return;
        };
        let status = resp.status().unwrap_or(0);
        let step = Step {
            req_frame: req.frame,
            resp_frame: resp.frame,
            stream: ex.stream,
            method: req.method().unwrap_or("?").to_string(),
            server: ex.server,
            client: ex.client,
            status,
            req_ts: req.frame_ts(),
            resp_ts: resp.frame_ts(),
            req_label: request_label(req),
            resp_label: response_label(resp),
        };
        if status < 400 {
            // A start (its id in the answer) or a step of a known upload.
            let uuid = if path_uuid.is_empty() {
                match resp.header("docker-upload-uuid") {
                    Some(u) => lossless(u),
                    None => return,
                }
            } else {
                path_uuid
            };
            match self.uploads.iter_mut().find(|u| u.uuid == uuid) {
                Some(u) if u.steps.len() < MAX_STEPS && u.errors.is_empty() => u.steps.push(step),
                Some(_) => {}
                None if step.method == "POST" && !uuid.is_empty() => {
                    self.uploads.push(Upload {
                        uuid,
                        name,
                        steps: vec![step],
                        errors: Vec::new(),
                        error_ts: 0,
                        reported: false,
                    });
                }
                None => {}
            }
            return;
        }
        if !matches!(status, 400 | 404) || path_uuid.is_empty() {
            return;
        }
        let body = body_of(resp);
        let code = if memchr::memmem::find(&body, b"BLOB_UPLOAD_UNKNOWN").is_some() {
            "BLOB_UPLOAD_UNKNOWN"
        } else if memchr::memmem::find(&body, b"BLOB_UPLOAD_INVALID").is_some() {
            "BLOB_UPLOAD_INVALID"
        } else {
            return;
        };
        let Some(u) = self
            .uploads
            .iter_mut()
            .find(|u| u.uuid == path_uuid && !u.reported)
        else {
            return;
        };
        let first = u.errors.is_empty();
        if first {
            u.error_ts = resp.end_ts;
        }
        if u.errors.len() < MAX_STEPS {
            u.errors.push((step, code));
        }
        if first {
            let due = (path_uuid, resp.end_ts.saturating_add(GATHER_NS));
            if let Some((uuid, _)) = self.due.push(due) {
                // The queue was full: the oldest is reported now.
                self.report_upload(&uuid, out);
            }
        }
    }

    fn next_deadline(&self) -> Option<TimestampNs> {
        self.due.next()
    }

    fn on_tick(&mut self, now: TimestampNs, out: &mut Vec<Finding>) {
        for (uuid, _) in self.due.take_due(now) {
            self.report_upload(&uuid, out);
        }
    }

    fn finish(&mut self, out: &mut Vec<Finding>) {
        for (uuid, _) in self.due.drain() {
            self.report_upload(&uuid, out);
        }
    }

    fn state_dropped(&self) -> u64 {
        self.uploads.dropped + self.due.dropped()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn upload_paths() {
        assert_eq!(
            upload_path(b"/v2/lab/small/blobs/uploads/"),
            Some(("lab/small".into(), String::new()))
        );
        assert_eq!(
            upload_path(b"/v2/a/blobs/uploads/1f2e?_state=x"),
            Some(("a".into(), "1f2e".into()))
        );
        assert_eq!(upload_path(b"/v2/a/blobs/sha256:ab"), None);
    }
}
