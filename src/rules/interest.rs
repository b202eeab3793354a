//! Which events a rule is called for. Each exchange's facts that rules select on (its status
//! class, a `/v2/` or upload path, a query, an `Authorization`, an S3 request refused, a message
//! cut short) are read once, by [`Interest::of`], instead of once per rule; a rule says which
//! of them it acts on ([`super::Rule::interest`]) and is called for those exchanges only. A
//! rule's interest is a superset of what it acts on: it still checks everything itself.

use crate::http::Exchange;
use crate::rules::kit::url::target_path;
use crate::rules::s3::is_s3_signed;
use std::ops::BitOr;
use std::sync::LazyLock;

/// A set of facts of an exchange, and of kinds of events.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Interest(u32);

impl Interest {
    /// Nothing.
    pub const NONE: Interest = Interest(0);
    /// Every event.
    pub const ALL: Interest = Interest(u32::MAX);
    /// Every exchange.
    pub const EXCHANGE: Interest = Interest(1);
    /// The first exchange captured on its connection.
    pub const FIRST_ON_CONNECTION: Interest = Interest(1 << 17);
    /// Answered 201 or 202 (the answers that give an upload's `Location`).
    pub const STATUS_201_202: Interest = Interest(1 << 18);
    /// An exchange without a response (or without a request).
    pub const UNANSWERED: Interest = Interest(1 << 1);
    /// Answered 1xx (a final status below 200) or without a status.
    pub const STATUS_OTHER: Interest = Interest(1 << 2);
    /// Any other 2xx.
    pub const STATUS_2XX: Interest = Interest(1 << 3);
    pub const STATUS_3XX: Interest = Interest(1 << 4);
    pub const STATUS_401: Interest = Interest(1 << 5);
    pub const STATUS_403: Interest = Interest(1 << 6);
    pub const STATUS_413: Interest = Interest(1 << 7);
    pub const STATUS_429: Interest = Interest(1 << 8);
    /// Any other 4xx.
    pub const STATUS_4XX: Interest = Interest(1 << 9);
    pub const STATUS_5XX: Interest = Interest(1 << 10);
    /// The request's path is `/v2` or under `/v2/` (origin or absolute form).
    pub const V2_PATH: Interest = Interest(1 << 11);
    /// The request's path is a `/v2/` path that holds `/blobs/uploads/`.
    pub const UPLOAD_PATH: Interest = Interest(1 << 12);
    /// The request target has a query (`?`).
    pub const QUERY: Interest = Interest(1 << 13);
    /// The request carries `Authorization`.
    pub const AUTHORIZATION: Interest = Interest(1 << 14);
    /// An S3 request ([`crate::rules::s3::is_s3_request`]) answered 3xx or above.
    pub const S3_REFUSED: Interest = Interest(1 << 15);
    /// The request or the response is incomplete.
    pub const CUT: Interest = Interest(1 << 16);
    /// Connection attempts resolved ([`super::Rule::on_attempt`]).
    pub const ATTEMPT: Interest = Interest(1 << 24);
    /// Connection attempts retransmitted ([`super::Rule::on_attempt_progress`]).
    pub const ATTEMPT_PROGRESS: Interest = Interest(1 << 25);
    /// Connection records ([`super::Rule::on_conn_end`]).
    pub const CONN_END: Interest = Interest(1 << 26);
    /// Connections ended with a message cut short ([`super::Rule::on_cut_short`]).
    pub const CUT_SHORT: Interest = Interest(1 << 27);
    /// TLS connections ended ([`super::Rule::on_tls`]).
    pub const TLS: Interest = Interest(1 << 28);
    /// Stalls of a connection's data ([`super::Rule::on_stall`]).
    pub const STALL: Interest = Interest(1 << 29);

    /// Whether the two sets share anything.
    pub fn meets(self, other: Interest) -> bool {
        self.0 & other.0 != 0
    }

    /// `self` when `cond` holds, nothing otherwise.
    pub const fn when(self, cond: bool) -> Interest {
        if cond { self } else { Interest::NONE }
    }

    /// The facts of `ex` rules select on, of those in `wanted` (the status class and whether it
    /// is first on its connection always; what costs a search only when a rule wants it).
    pub fn of(ex: &Exchange, wanted: Interest) -> Interest {
        static UPLOADS: LazyLock<memchr::memmem::Finder<'static>> =
            LazyLock::new(|| memchr::memmem::Finder::new(b"/blobs/uploads/"));
        let mut i = Interest::EXCHANGE;
        if ex.index == 0 {
            i = i | Interest::FIRST_ON_CONNECTION;
        }
        let (req, resp) = (ex.request.as_ref(), ex.response.as_ref());
        if req.is_some_and(|r| !r.complete) || resp.is_some_and(|r| !r.complete) {
            i = i | Interest::CUT;
        }
        let status = resp.and_then(|r| r.status());
        i = i | match (req, status) {
            (Some(_), Some(s)) if resp.is_some() => match s {
                201 | 202 => Interest::STATUS_201_202,
                200..=299 => Interest::STATUS_2XX,
                300..=399 => Interest::STATUS_3XX,
                401 => Interest::STATUS_401,
                403 => Interest::STATUS_403,
                413 => Interest::STATUS_413,
                429 => Interest::STATUS_429,
                400..=499 => Interest::STATUS_4XX,
                500..=599 => Interest::STATUS_5XX,
                _ => Interest::STATUS_OTHER,
            },
            (Some(_), None) if resp.is_some() => Interest::STATUS_OTHER,
            _ => Interest::UNANSWERED,
        };
        let Some(req) = req else {
            return i;
        };
        let uri = req.uri().unwrap_or_default();
        let path = target_path(uri);
        // The registry API lives under `/v2/` (the distribution spec), its upload URLs too.
        if path.starts_with(b"/v2/") || path == b"/v2" {
            i = i | Interest::V2_PATH;
            if wanted.meets(Interest::UPLOAD_PATH) && UPLOADS.find(path).is_some() {
                i = i | Interest::UPLOAD_PATH;
            }
        }
        // Most targets are short: a plain scan beats a vectorised search's setup.
        if wanted.meets(Interest::QUERY) && uri.contains(&b'?') {
            i = i | Interest::QUERY;
        }
        let authorization = if wanted.meets(Interest::AUTHORIZATION | Interest::S3_REFUSED) {
            req.header("authorization")
        } else {
            None
        };
        if authorization.is_some() {
            i = i | Interest::AUTHORIZATION;
        }
        if wanted.meets(Interest::S3_REFUSED)
            && resp.is_some()
            && status.is_some_and(|s| s >= 300)
            && is_s3_signed(authorization, uri)
        {
            i = i | Interest::S3_REFUSED;
        }
        i
    }
}

impl BitOr for Interest {
    type Output = Interest;
    fn bitor(self, o: Interest) -> Interest {
        Interest(self.0 | o.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rules::testing::exchange;

    fn of(req: &[u8], resp: &[u8]) -> Interest {
        Interest::of(
            &exchange("10.0.0.1:40000", "10.0.0.2:80", 0, 4, 0, req, resp),
            Interest::ALL,
        )
    }

    #[test]
    fn facts_of_exchanges() {
        let i = of(
            b"PATCH /v2/a/blobs/uploads/1?_state=x HTTP/1.1\r\nAuthorization: Bearer t\r\nContent-Length: 0\r\n\r\n",
            b"HTTP/1.1 401 Unauthorized\r\nContent-Length: 0\r\n\r\n",
        );
        for f in [
            Interest::EXCHANGE,
            Interest::STATUS_401,
            Interest::V2_PATH,
            Interest::UPLOAD_PATH,
            Interest::QUERY,
            Interest::AUTHORIZATION,
        ] {
            assert!(i.meets(f), "{f:?}");
        }
        for f in [Interest::STATUS_2XX, Interest::S3_REFUSED, Interest::CUT] {
            assert!(!i.meets(f), "{f:?}");
        }
        let s3 = of(
            b"GET /bucket/key HTTP/1.1\r\nAuthorization: AWS4-HMAC-SHA256 Credential=x\r\n\r\n",
            b"HTTP/1.1 403 Forbidden\r\nContent-Length: 5\r\n\r\nab",
        );
        for f in [Interest::STATUS_403, Interest::S3_REFUSED, Interest::CUT] {
            assert!(s3.meets(f), "{f:?}");
        }
        assert!(!s3.meets(Interest::V2_PATH));
        let unanswered = of(b"GET /v2 HTTP/1.1\r\n\r\n", b"");
        assert!(unanswered.meets(Interest::UNANSWERED) && unanswered.meets(Interest::V2_PATH));
        assert!(!unanswered.meets(Interest::STATUS_OTHER));
    }
}
