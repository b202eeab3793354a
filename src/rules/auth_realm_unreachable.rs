//! `auth-realm-unreachable`: a registry's 401 names a token (or Basic) `realm` that the client
//! then cannot reach: its SYNs to the realm's address are retransmitted with no answer, or
//! answered by a reset or an ICMP unreachable, or it connects but the token request is never
//! answered.

use super::kit::attempts::attempt_evidence;
use super::kit::referral::{Referral, Referrals, failure_words};
use super::kit::{Url, exchange_evidence, is_internal, realm_of, request_line, secs};
use super::{Interest, Rule, RuleInfo};
use crate::capture::TimestampNs;
use crate::finding::{Finding, FindingDraft, Severity, name_server};
use crate::flow::ConnectionAttempt;
use crate::http::Exchange;
use crate::text::lossless;
use std::net::{IpAddr, SocketAddr};

pub static INFO: RuleInfo = RuleInfo {
    id: "auth-realm-unreachable",
    severity: Severity::Error,
    title: "The token realm named in a 401 cannot be reached by the client",
    doc: include_str!("../../docs/rules/auth-realm-unreachable.md"),
    suppress_for_ns: None,
    explained_by_others: false,
};

/// A token request counts as never answered when its connection ended (or the capture did)
/// this long after it with no response, and no server bytes were missing from the capture.
const NO_ANSWER_NS: TimestampNs = 5_000_000_000;

/// A 401's realm (the referral's data: the realm as the header gave it).
type Challenge = Referral<String>;

#[derive(Default)]
pub struct AuthRealmUnreachable {
    challenges: Referrals<String>,
}

/// Why the realm's address itself is suspect, when it is.
fn address_note(ip: IpAddr, registry: SocketAddr) -> Option<String> {
    if ip.is_loopback() {
        return Some(format!(
            "The realm host {ip} is a loopback address: only the registry's own host can reach it, never a client."
        ));
    }
    if is_internal(ip) && !is_internal(registry.ip()) {
        return Some(format!(
            "The realm host {ip} is a private address, while the client reached the registry at the public address {registry}: the realm is probably the registry's internal address, not the one clients use."
        ));
    }
    if ip != registry.ip() {
        return Some(format!(
            "The client reached the registry itself at {registry}, a different address from the realm's."
        ));
    }
    None
}

impl AuthRealmUnreachable {
    fn report(c: &mut Challenge, a: &ConnectionAttempt, how: &str, out: &mut Vec<Finding>) {
        c.reported = true;
        let Some(resp) = &c.ex.response else {
            return;
        };
        let mut evidence = exchange_evidence(&c.ex, "registry request", "401 naming the realm");
        evidence.extend(attempt_evidence(
            a,
            format!("SYN to the realm {} from {}", a.server, a.client),
            "reset: nothing listens on the realm's port",
        ));
        name_server(&mut evidence, c.ex.server, "registry");
        name_server(&mut evidence, a.server, "token realm");
        let mut detail = format!(
            "{} answered {} from {} with 401 and `WWW-Authenticate` realm \"{}\". The client then tried to reach the realm at {}: {how}.",
            c.ex.server,
            c.ex.request
                .as_ref()
                .map(|m| request_line(m, 80))
                .unwrap_or_default(),
            c.client,
            c.data,
            a.server,
        );
        if let Some(note) = address_note(a.server.ip(), c.ex.server) {
            detail.push(' ');
            detail.push_str(&note);
        }
        let remediation = format!(
            "Make the registry name a realm its clients can reach: Harbor: set `external_url` (or `hostname`) in harbor.yml to the address clients use, run `./prepare` and restart; \
             Harbor Helm chart: `externalURL`; distribution: `auth.token.realm` (`REGISTRY_AUTH_TOKEN_REALM`). \
             Otherwise make {} reachable from {} (routes, firewall, DNS). Verify from the client: `curl -v {}` must connect and answer.",
            c.url.authority(),
            c.client,
            crate::text::shell_quote(&c.data)
        );
        out.push(
            FindingDraft {
                rule: INFO.id,
                severity: INFO.severity,
                key_frame: resp.frame,
                evidence,
                title: format!(
                    "Token realm {} named in a 401 is unreachable from {}",
                    c.url.authority(),
                    c.client
                ),
                detail,
                remediation,
                identifier: None,
                time: secs(c.ts),
            }
            .build(),
        );
    }
}

impl Rule for AuthRealmUnreachable {
    fn info(&self) -> &'static RuleInfo {
        &INFO
    }

    fn interest(&self) -> Interest {
        Interest::STATUS_401
            | Interest::ATTEMPT
            | Interest::ATTEMPT_PROGRESS
            | Interest::EXCHANGE.when(!self.challenges.is_empty())
    }

    fn on_exchange(&mut self, ex: &Exchange, out: &mut Vec<Finding>) {
        // A request to a realm: answered means reachable; unanswered means the token service
        // accepted the connection but never replied.
        if let Some(req) = ex.request.as_ref().filter(|_| !self.challenges.is_empty()) {
            for c in self.challenges.requested(ex) {
                if ex.response.is_some() {
                    c.reached = true;
                } else if req.first_ts >= c.ts
                    && !ex.response_gap
                    && ex.ended_ts.saturating_sub(req.first_ts) >= NO_ANSWER_NS
                {
                    let a = ConnectionAttempt::new(
                        ex.stream,
                        ex.client,
                        ex.server,
                        req.frame,
                        req.first_ts,
                    );
                    Self::report(
                        c,
                        &a,
                        &format!(
                            "it connected and sent {} (frame {}), which was never answered",
                            request_line(req, 80),
                            req.frame
                        ),
                        out,
                    );
                }
            }
        }
        let Some(resp) = &ex.response else {
            return;
        };
        if resp.status() != Some(401) {
            return;
        }
        // The same challenge again (a client retrying, or one 401 per request): known without
        // parsing the realm.
        let client = ex.client.ip();
        if self.challenges.iter().any(|c| {
            c.client == client
                && c.ex.response.as_ref().is_some_and(|r| {
                    r.headers_named("www-authenticate")
                        .eq(resp.headers_named("www-authenticate"))
                })
        }) {
            return;
        }
        let Some(realm) = resp
            .headers_named("www-authenticate")
            .find_map(|v| realm_of(&lossless(v)))
        else {
            return;
        };
        let Some(url) = Url::parse(&realm) else {
            return;
        };
        if self
            .challenges
            .iter()
            .any(|c| c.client == client && c.data == realm)
        {
            return;
        }
        self.challenges
            .push(Referral::new(ex, url, resp.end_ts, realm));
    }

    fn on_attempt_progress(&mut self, a: &ConnectionAttempt, _out: &mut Vec<Finding>) {
        self.challenges.on_attempt_progress(a);
    }

    fn on_attempt(&mut self, a: &ConnectionAttempt, out: &mut Vec<Finding>) {
        self.challenges
            .on_attempt(a, |c, a| Self::report(c, a, &failure_words(a), out));
    }

    fn next_deadline(&self) -> Option<TimestampNs> {
        self.challenges.next_deadline()
    }

    fn on_tick(&mut self, now: TimestampNs, out: &mut Vec<Finding>) {
        self.challenges
            .on_tick(now, |c, a| Self::report(c, a, &failure_words(a), out));
    }

    fn finish(&mut self, out: &mut Vec<Finding>) {
        self.challenges
            .finish(|c, a| Self::report(c, a, &failure_words(a), out));
    }

    fn state_dropped(&self) -> u64 {
        self.challenges.dropped
    }
}

#[cfg(test)]
mod cause_tests {
    use super::*;
    use crate::flow::Outcome;
    use crate::rules::testing::exchange;

    fn challenge(r: &mut AuthRealmUnreachable, realm: &str, out: &mut Vec<Finding>) {
        let resp = format!(
            "HTTP/1.1 401 Unauthorized\r\nWww-Authenticate: Bearer realm=\"{realm}\",service=\"r\"\r\nContent-Length: 0\r\n\r\n"
        );
        r.on_exchange(
            &exchange(
                "203.0.113.5:40000",
                "198.51.100.7:443",
                0,
                4,
                100,
                b"GET /v2/ HTTP/1.1\r\n\r\n",
                resp.as_bytes(),
            ),
            out,
        );
    }

    #[test]
    fn icmp_unreachable_loopback_realm() {
        let mut r = AuthRealmUnreachable::default();
        let mut out = Vec::new();
        challenge(&mut r, "http://127.0.0.1:8080/service/token", &mut out);
        let mut a = ConnectionAttempt::new(
            1,
            "203.0.113.5:40001"
                .parse()
                .unwrap_or_else(|_| unreachable!()),
            "127.0.0.1:8080".parse().unwrap_or_else(|_| unreachable!()),
            9,
            101_000_000_000,
        );
        a.icmp_frame = Some(10);
        a.outcome = Outcome::Unreachable;
        r.on_attempt(&a, &mut out);
        assert_eq!(out.len(), 1);
        assert!(
            out[0].detail.contains("ICMP destination-unreachable")
                && out[0].detail.contains("loopback"),
            "{}",
            out[0].detail
        );
        assert_eq!(out[0].frames, [4, 6, 9, 10]);
    }

    #[test]
    fn private_realm_behind_a_public_registry_and_an_unanswered_token_request() {
        let mut r = AuthRealmUnreachable::default();
        let mut out = Vec::new();
        challenge(&mut r, "http://10.0.0.209/service/token", &mut out);
        let token = exchange(
            "203.0.113.5:40002",
            "10.0.0.209:80",
            2,
            20,
            101,
            b"GET /service/token?service=r HTTP/1.1\r\nHost: 10.0.0.209\r\n\r\n",
            b"",
        );
        r.on_exchange(&token, &mut out);
        assert_eq!(out.len(), 1);
        let d = &out[0].detail;
        assert!(
            d.contains("never answered") && d.contains("public address 198.51.100.7:443"),
            "{d}"
        );
    }

    #[test]
    fn answered_realm_and_one_lost_syn_are_not_findings() {
        let mut r = AuthRealmUnreachable::default();
        let mut out = Vec::new();
        challenge(&mut r, "http://10.0.0.9/token", &mut out);
        let c = "203.0.113.5:40003"
            .parse()
            .unwrap_or_else(|_| unreachable!());
        let s = "10.0.0.9:80".parse().unwrap_or_else(|_| unreachable!());
        let a = ConnectionAttempt::new(3, c, s, 30, 101_000_000_000);
        r.on_attempt(&a, &mut out); // one SYN, then the capture ended: not conclusive
        let mut ok = ConnectionAttempt::new(4, c, s, 40, 102_000_000_000);
        ok.outcome = Outcome::Answered;
        r.on_attempt(&ok, &mut out);
        r.finish(&mut out);
        assert!(out.is_empty(), "{out:?}");
    }
}
