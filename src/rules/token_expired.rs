//! `token-expired`: a registry answers `401` with `WWW-Authenticate: Bearer ...,
//! error="invalid_token"` to a request carrying a token the client had used before in the
//! capture: the token's lifetime (the JWT's `iat` and `exp`, read without verifying) against
//! when the client used it first and last. Most often a push that outlasts the token (large
//! layers, a slow link), the registry refusing the upload's next `PATCH` or `PUT`. The token's
//! request to the realm (named by an earlier 401) is shown when the capture has it.
//!
//! The token service's answer is not read (bodies of successful answers are not kept): the
//! lifetime comes from the token itself, as the registry reads it. Tokens are known by the last
//! 16 characters of their text (a JWT's signature), which is all that is kept of them besides
//! its times; a token is never printed.

use super::kit::{
    Bounded, Url, auth_param, exchange_evidence, exchange_parties, realm_of, request_label,
    request_line, secs, target_path,
};
use super::{Interest, Rule, RuleInfo};
use crate::capture::TimestampNs;
use crate::finding::{Evidence, Finding, FindingDraft, Severity, name_server};
use crate::http::{Exchange, Message};
use crate::text::lossless;
use base64::Engine;
use rustc_hash::FxHashMap;
use std::net::{IpAddr, SocketAddr};

pub static INFO: RuleInfo = RuleInfo {
    id: "token-expired",
    severity: Severity::Error,
    title: "A registry refused (invalid_token) a token the client had been using: its lifetime against the push",
    doc: include_str!("../../docs/rules/token-expired.md"),
    suppress_for_ns: Some(60_000_000_000),
    explained_by_others: false,
};

/// A token the capture saw a client use.
#[derive(Debug)]
struct Used {
    /// The last characters of the token: how requests carrying it are known.
    tail: Tail,
    jwt_iat: Option<i64>,
    jwt_exp: Option<i64>,
    /// The first request that carried it: frame, time, what.
    first: (u64, TimestampNs, String),
    /// The first request that carried it, as evidence.
    first_evidence: Evidence,
    /// The client's token request to a realm just before, if the capture has it.
    issued: Option<Issued>,
}

/// A client's answered token request to a realm.
#[derive(Clone, Debug)]
struct Issued {
    /// The frame of the answer.
    answer: u64,
    /// The realm's address.
    realm: SocketAddr,
    /// The request and the answer.
    evidence: Vec<Evidence>,
}

/// A realm an earlier 401 named, and the client's last request to it.
#[derive(Debug)]
struct Realm {
    client: IpAddr,
    path: String,
    /// The last answered request to it.
    last: Option<Issued>,
}

#[derive(Default)]
pub struct TokenExpired {
    /// Tokens by client and tail (looked up on every request that carries one), at most
    /// [`crate::rules::MAX_RULE_STATE`]: `order` says which goes first.
    tokens: FxHashMap<(IpAddr, Tail), Used>,
    order: Bounded<(IpAddr, Tail)>,
    realms: Bounded<Realm>,
    /// The last challenge read (a registry sends the same one to every unauthenticated
    /// request): read once.
    last_challenge: Vec<u8>,
}

const TAIL: usize = 16;

/// The token of `Authorization: Bearer <token>`, as sent (read on every request: nothing is
/// copied).
fn bearer(req: &Message) -> Option<&[u8]> {
    let v = req.header("authorization")?.trim_ascii();
    let at = v.iter().position(|&c| c == b' ')?;
    let (scheme, tok) = (v.get(..at)?, v.get(at..)?);
    scheme
        .eq_ignore_ascii_case(b"bearer")
        .then(|| tok.trim_ascii())
}

/// The last [`TAIL`] bytes of a token: what is kept of it, and how it is known again.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
struct Tail([u8; TAIL], usize);

impl Tail {
    fn of(token: &[u8]) -> Tail {
        let t = token
            .get(token.len().saturating_sub(TAIL)..)
            .unwrap_or(token);
        let mut b = [0; TAIL];
        if let Some(dst) = b.get_mut(..t.len()) {
            dst.copy_from_slice(t);
        }
        Tail(b, t.len())
    }

    fn text(&self) -> String {
        lossless(self.0.get(..self.1).unwrap_or(&self.0))
    }
}

/// The `iat` and `exp` of a JWT's claims, decoded without verifying.
fn jwt_times(token: &str) -> (Option<i64>, Option<i64>) {
    let Some(claims) = token.split('.').nth(1) else {
        return (None, None);
    };
    let Ok(raw) =
        base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(claims.trim_end_matches('='))
    else {
        return (None, None);
    };
    let Ok(v) = serde_json::from_slice::<serde_json::Value>(&raw) else {
        return (None, None);
    };
    let time = |k: &str| v.get(k).and_then(serde_json::Value::as_i64);
    (time("iat"), time("exp"))
}

/// `3m 20s`, `45 s`.
fn span(s: i64) -> String {
    let a = s.unsigned_abs();
    if a < 120 {
        format!("{s} s")
    } else {
        format!("{}m {}s", s / 60, (s % 60).abs())
    }
}

impl TokenExpired {
    fn report(u: &Used, ex: &Exchange, out: &mut Vec<Finding>) {
        let (Some(req), Some(resp)) = (&ex.request, &ex.response) else {
            return;
        };
        let used_secs = req.first_ts / 1_000_000_000;
        let (first_frame, first_ts, first_what) = &u.first;
        let lifetime = match (u.jwt_iat, u.jwt_exp) {
            (Some(a), Some(b)) => Some(b.saturating_sub(a)),
            _ => None,
        };
        let mut detail = format!(
            "{} answered {} (frame {}) 401 with `error=\"invalid_token\"`. {} had been using that token since frame {} ({}), {} before",
            ex.server,
            request_line(req, 80),
            req.frame,
            ex.client.ip(),
            first_frame,
            first_what,
            span(req.first_ts.saturating_sub(*first_ts) / 1_000_000_000),
        );
        if let Some(i) = &u.issued {
            detail.push_str(&format!(
                "; it got it from the realm at {} (frame {})",
                i.realm, i.answer
            ));
        }
        detail.push('.');
        let expired = match (u.jwt_iat, u.jwt_exp) {
            (iat, Some(exp)) => {
                detail.push_str(&format!(
                    " The token is a JWT issued {}, valid for {}: at this request it was {}.",
                    iat.map(|i| format!(
                        "{} before this request (`iat`)",
                        span(used_secs.saturating_sub(i))
                    ))
                    .unwrap_or_else(|| "at a time it does not say".to_string()),
                    lifetime
                        .map(|l| format!("{} (`exp`)", span(l)))
                        .unwrap_or_else(|| "until its `exp`".to_string()),
                    if used_secs > exp {
                        format!("{} past its expiry", span(used_secs.saturating_sub(exp)))
                    } else {
                        format!("{} before its expiry", span(exp.saturating_sub(used_secs)))
                    }
                ));
                used_secs > exp
            }
            _ => {
                detail.push_str(" The token is not a JWT with an `exp`: the capture does not show its lifetime.");
                false
            }
        };
        let remediation = if expired {
            detail.push_str(
                " The token expired while the client was still using it: a push (or pull) that outlasts the token's lifetime. \
                 Clients fetch a new token for a new request, but an upload in flight fails (`unauthorized: authentication \
                 required`). distribution accepts a token up to 60 s past its `exp` (for clock skew).",
            );
            "Lengthen the token lifetime beyond the longest push: Harbor's \"Token Expiration\" (Configuration > System \
             Settings, minutes; 30 by default), docker_auth `token.expiration`, GitLab's `container_registry_token_expire_delay` \
             (Admin > Settings > CI/CD > Container Registry, minutes); or make pushes shorter (smaller layers, a faster link)."
                .to_string()
        } else {
            detail.push_str(
                " By the capture's clock the token had not expired: the registry's clock differs from the token service's (it \
                 checks `nbf`/`exp` against its own time, with 60 s of leeway), or it does not trust the token's signer \
                 (`auth.token.rootcertbundle`, `issuer`, `service`), or the token was made for another audience or revoked.",
            );
            format!(
                "Compare the clocks of the registry at {} and of the token service (chrony/ntpd), and check the registry's \
                 `auth.token` settings (`issuer`, `service`, `rootcertbundle`) against the token service's.",
                ex.server
            )
        };
        let mut evidence = Vec::new();
        if let Some(i) = &u.issued {
            evidence.extend(i.evidence.iter().cloned());
        }
        evidence.push(u.first_evidence.clone());
        evidence.extend(exchange_evidence(ex, "request with the token", "refused"));
        if let Some(i) = &u.issued {
            name_server(&mut evidence, i.realm, "token realm");
        }
        name_server(&mut evidence, ex.server, "registry");
        out.push(
            FindingDraft {
                rule: INFO.id,
                severity: INFO.severity,
                key_frame: resp.frame,
                evidence,
                title: if expired {
                    format!(
                        "{} refused an expired token ({} past its exp; issued for {})",
                        ex.server,
                        span(used_secs.saturating_sub(u.jwt_exp.unwrap_or(used_secs))),
                        lifetime.map(span).unwrap_or_default()
                    )
                } else {
                    format!("{} refused a token it should still accept", ex.server)
                },
                detail,
                remediation,
                time: secs(resp.end_ts),
                identifier: Some(format!("{} {}", ex.client.ip(), u.tail.text())),
            }
            .build(),
        );
    }
}

impl Rule for TokenExpired {
    fn info(&self) -> &'static RuleInfo {
        &INFO
    }

    fn interest(&self) -> Interest {
        Interest::STATUS_401
            | Interest::AUTHORIZATION
            | Interest::STATUS_2XX.when(!self.realms.is_empty())
    }

    fn on_exchange(&mut self, ex: &Exchange, out: &mut Vec<Finding>) {
        let (Some(req), Some(resp)) = (&ex.request, &ex.response) else {
            return;
        };
        let status = resp.status().unwrap_or(0);
        let client = ex.client.ip();
        // A realm a 401 names: the client's next request to its path is its token request.
        if status == 401
            && let Some(challenge) = resp.header("www-authenticate")
            && challenge != self.last_challenge.as_slice()
            && {
                self.last_challenge.clear();
                self.last_challenge.extend_from_slice(challenge);
                true
            }
            && let Some(url) = realm_of(&lossless(challenge)).and_then(|r| Url::parse(&r))
            && !self
                .realms
                .iter()
                .any(|r| r.client == client && r.path == url.path())
        {
            self.realms.push(Realm {
                client,
                path: url.path().to_string(),
                last: None,
            });
        }
        if status == 200 && !self.realms.is_empty() {
            let path = target_path(req.uri().unwrap_or_default());
            let to_realm = |r: &Realm| path.starts_with(r.path.as_bytes()) && r.client == client;
            // Most answers are not to a realm: looked for before anything is written.
            if self.realms.iter().any(to_realm) {
                let mut evidence = exchange_evidence(ex, "", "");
                for (e, what) in evidence.iter_mut().zip([
                    format!("token request to the realm {}", ex.server),
                    "token issued".to_string(),
                ]) {
                    e.what = what;
                }
                for r in self.realms.iter_mut().filter(|r| to_realm(r)) {
                    r.last = Some(Issued {
                        answer: resp.frame,
                        realm: ex.server,
                        evidence: evidence.clone(),
                    });
                }
            }
        }
        // Registry requests carrying a token.
        let Some(token) = bearer(req) else {
            return;
        };
        let key = (client, Tail::of(token));
        let Some(u) = self.tokens.get(&key) else {
            if status == 401 {
                return; // refused at its first use: not a token that expired in use
            }
            let (jwt_iat, jwt_exp) = jwt_times(&lossless(token));
            let issued = self
                .realms
                .iter()
                .filter(|r| r.client == client)
                .filter_map(|r| r.last.as_ref())
                .filter(|i| i.answer < req.frame)
                .max_by_key(|i| i.answer)
                .cloned();
            if let Some(old) = self.order.push(key) {
                self.tokens.remove(&old);
            }
            self.tokens.insert(
                key,
                Used {
                    tail: key.1,
                    jwt_iat,
                    jwt_exp,
                    first: (req.frame, req.first_ts, request_line(req, 60)),
                    first_evidence: Evidence::packet(
                        req.frame,
                        Some(ex.stream),
                        exchange_parties(ex),
                        req.frame_ts(),
                        format!("request: first with the token: {}", request_line(req, 60)),
                        request_label(req),
                    ),
                    issued,
                },
            );
            return;
        };
        if status != 401 {
            return;
        }
        let invalid = resp
            .headers_named("www-authenticate")
            .any(|v| auth_param(&lossless(v), "error").as_deref() == Some("invalid_token"));
        if invalid {
            Self::report(u, ex, out);
        }
    }

    fn state_dropped(&self) -> u64 {
        self.order.dropped + self.realms.dropped
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rules::testing::exchange;

    /// A JWT with `iat` 1000 and `exp` 1006 (not signed: only its claims are read).
    fn jwt() -> String {
        let claims =
            base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(br#"{"iat":1000,"exp":1006}"#);
        format!("eyJhbGciOiJSUzI1NiJ9.{claims}.c2lnbmF0dXJlLW9mLXRoZS10b2tlbg")
    }

    /// The token used at 1000 s (200), then at `1000 + used_after` s (401 invalid_token).
    fn run(used_after: i64) -> Vec<Finding> {
        let mut r = TokenExpired::default();
        let mut out = Vec::new();
        let tok = jwt();
        let req = format!("GET /v2/a/manifests/1 HTTP/1.1\r\nAuthorization: Bearer {tok}\r\n\r\n");
        r.on_exchange(
            &exchange(
                "10.0.0.1:40000",
                "10.0.0.2:5000",
                1,
                10,
                1000,
                req.as_bytes(),
                b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n",
            ),
            &mut out,
        );
        let req = format!(
            "PATCH /v2/a/blobs/uploads/u HTTP/1.1\r\nAuthorization: Bearer {tok}\r\nContent-Length: 0\r\n\r\n"
        );
        r.on_exchange(
            &exchange(
                "10.0.0.1:40001",
                "10.0.0.2:5000",
                2,
                20,
                1000 + used_after,
                req.as_bytes(),
                b"HTTP/1.1 401 Unauthorized\r\nWww-Authenticate: Bearer realm=\"http://10.0.0.5/token\",service=\"r\",error=\"invalid_token\"\r\nContent-Length: 0\r\n\r\n",
            ),
            &mut out,
        );
        out
    }

    #[test]
    fn an_expired_token_and_one_still_valid() {
        let f = run(70);
        assert_eq!(f.len(), 1);
        assert_eq!(f[0].key_frame, 22);
        assert!(f[0].detail.contains("for 6 s (`exp`"), "{}", f[0].detail);
        assert!(
            f[0].detail.contains("64 s past its expiry"),
            "{}",
            f[0].detail
        );
        assert!(f[0].remediation.starts_with("Lengthen the token lifetime"));
        assert!(!f[0].detail.contains(&jwt()), "the token is never printed");
        let f = run(2);
        assert!(f[0].detail.contains("had not expired"), "{}", f[0].detail);
    }
}
