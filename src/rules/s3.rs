//! What the rules need to know about S3: signed requests, presigned URLs, S3's XML error
//! document, `X-Amz-Date`.

use super::kit::time::epoch;
use super::kit::{Url, query_param};
use crate::http::Message;
use quick_xml::events::Event;

/// An S3 error document (`<Error><Code>…</Code><Message>…</Message>…</Error>`).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct S3Error {
    pub code: String,
    pub message: String,
    pub request_id: String,
}

/// Parses an S3 XML error document; `None` when the body is not one (HTML, JSON, empty).
pub fn parse_s3_error(body: &[u8]) -> Option<S3Error> {
    let mut reader = quick_xml::Reader::from_reader(body);
    let mut path: Vec<Vec<u8>> = Vec::new();
    let mut err = S3Error::default();
    let mut saw_root = false;
    loop {
        match reader.read_event() {
            Ok(Event::Start(e)) => {
                let name = e.local_name().as_ref().to_vec();
                if path.is_empty() {
                    if name != b"Error" {
                        return None;
                    }
                    saw_root = true;
                }
                path.push(name);
                if path.len() > 16 {
                    return None;
                }
            }
            Ok(Event::End(_)) => {
                path.pop();
            }
            Ok(Event::Empty(e)) if path.is_empty() => {
                return (e.local_name().as_ref() == b"Error").then(S3Error::default);
            }
            Ok(Event::Text(t)) if path.len() == 2 => {
                let text = t.decode().map(|c| c.into_owned()).unwrap_or_default();
                match path.get(1).map(Vec::as_slice) {
                    Some(b"Code") => err.code.push_str(&text),
                    Some(b"Message") => err.message.push_str(&text),
                    Some(b"RequestId") => err.request_id.push_str(&text),
                    _ => {}
                }
            }
            // An entity in the text (`&lt;`, `&amp;`, `&#39;`): the character it stands for.
            Ok(Event::GeneralRef(r)) if path.len() == 2 => {
                let c = match r.resolve_char_ref() {
                    Ok(Some(c)) => Some(c),
                    _ => match r.decode().unwrap_or_default().as_ref() {
                        "lt" => Some('<'),
                        "gt" => Some('>'),
                        "amp" => Some('&'),
                        "quot" => Some('"'),
                        "apos" => Some('\''),
                        _ => None,
                    },
                };
                if let Some(c) = c {
                    match path.get(1).map(Vec::as_slice) {
                        Some(b"Code") => err.code.push(c),
                        Some(b"Message") => err.message.push(c),
                        Some(b"RequestId") => err.request_id.push(c),
                        _ => {}
                    }
                }
            }
            Ok(Event::Eof) => break,
            Ok(_) => {}
            Err(_) => return saw_root.then_some(err),
        }
    }
    saw_root.then_some(err)
}

/// What a presigned S3 URL says about itself.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Presigned {
    /// SigV4 (`X-Amz-Signature`) or SigV2 (`Signature` + `Expires`).
    pub v4: bool,
    /// Signing time (SigV4 `X-Amz-Date`), seconds since the epoch.
    pub signed_at: Option<i64>,
    /// Validity in seconds (SigV4 `X-Amz-Expires`).
    pub expires_in: Option<i64>,
    /// Absolute expiry (SigV2 `Expires`, or SigV4 date + expires).
    pub expires_at: Option<i64>,
    pub signed_headers: Vec<String>,
    pub credential: Option<String>,
}

/// Recognises a presigned S3 URL by its query parameters.
pub fn presigned(url: &Url) -> Option<Presigned> {
    let q = url.query();
    if query_param(q, "X-Amz-Signature").is_some() {
        let signed_at = query_param(q, "X-Amz-Date").and_then(|d| parse_amz_date(&d));
        let expires_in = query_param(q, "X-Amz-Expires").and_then(|e| e.parse().ok());
        return Some(Presigned {
            v4: true,
            signed_at,
            expires_in,
            expires_at: signed_at.zip(expires_in).map(|(a, b)| a.saturating_add(b)),
            signed_headers: query_param(q, "X-Amz-SignedHeaders")
                .map(|h| h.split(';').map(str::to_string).collect())
                .unwrap_or_default(),
            credential: query_param(q, "X-Amz-Credential"),
        });
    }
    if query_param(q, "Signature").is_some() && query_param(q, "AWSAccessKeyId").is_some() {
        return Some(Presigned {
            v4: false,
            signed_at: None,
            expires_in: None,
            expires_at: query_param(q, "Expires").and_then(|e| e.parse().ok()),
            signed_headers: Vec::new(),
            credential: query_param(q, "AWSAccessKeyId"),
        });
    }
    None
}

/// A request signed for S3: SigV4 or SigV2 `Authorization`, or a presigned query.
pub fn is_s3_request(req: &Message) -> bool {
    is_s3_signed(req.header("authorization"), req.uri().unwrap_or_default())
}

/// [`is_s3_request`] of a request with this `Authorization` (if any) and target.
pub fn is_s3_signed(authorization: Option<&[u8]>, uri: &[u8]) -> bool {
    if let Some(a) = authorization
        && (a.starts_with(b"AWS4-HMAC-SHA256 ") || a.starts_with(b"AWS "))
    {
        return true;
    }
    let Some(q) = memchr::memchr(b'?', uri).and_then(|i| uri.get(i + 1..)) else {
        return false;
    };
    // The same rule as `query_param`: a parameter is named by what precedes its `=` (all of
    // it when there is none), so a URL counts as signed here exactly when `presigned` reads it.
    let has = |name: &[u8]| {
        q.split(|&c| c == b'&')
            .any(|kv| kv.split(|&c| c == b'=').next() == Some(name))
    };
    has(b"X-Amz-Signature") || (has(b"Signature") && has(b"AWSAccessKeyId"))
}

/// `20261125T172344Z` (SigV4 `X-Amz-Date`).
pub fn parse_amz_date(s: &str) -> Option<i64> {
    let n = |a: usize, b: usize| s.get(a..b).and_then(|x| x.parse::<i64>().ok());
    if s.len() != 16 || s.get(8..9) != Some("T") || !s.ends_with('Z') {
        return None;
    }
    epoch(
        n(0, 4)?,
        n(4, 6)?,
        n(6, 8)?,
        n(9, 11)?,
        n(11, 13)?,
        n(13, 15)?,
    )
}

/// S3 refuses a SigV4 request signed more than this far from its own clock (seconds).
pub const MAX_SKEW_SECS: i64 = 900;

/// The clocks an S3 exchange shows, in seconds since the epoch: the signer's (`X-Amz-Date`,
/// header or presigned query) and the answer's `Date`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Clocks {
    pub signed: Option<i64>,
    pub date: Option<i64>,
}

impl Clocks {
    pub fn of(req: &Message, resp: &Message) -> Clocks {
        let signed = req
            .header_str("x-amz-date")
            .and_then(|d| parse_amz_date(d.trim()))
            .or_else(|| {
                let uri = String::from_utf8_lossy(req.uri().unwrap_or_default()).into_owned();
                let q = uri.split_once('?')?.1;
                query_param(q, "X-Amz-Date").and_then(|d| parse_amz_date(&d))
            });
        let date = resp
            .header_str("date")
            .and_then(|d| super::kit::parse_http_date(&d));
        Clocks { signed, date }
    }

    /// `X-Amz-Date` minus the answer's `Date`, when both are there.
    pub fn skew(&self) -> Option<i64> {
        Some(self.signed? - self.date?)
    }

    /// Whether the two clocks differ by more than S3 accepts.
    pub fn too_skewed(&self) -> bool {
        self.skew().is_some_and(|s| s.abs() > MAX_SKEW_SECS)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rules::kit::{html_title, human_duration, parse_http_date, target_path_query};

    #[test]
    fn s3_error_documents_with_entities() {
        let e = parse_s3_error(
            b"<Error><Code>A&amp;B</Code><Message>&lt;x&gt; &#39;y&#x27; &quot;z&quot;</Message></Error>",
        );
        assert_eq!(
            e.map(|e| (e.code, e.message)),
            Some(("A&B".into(), "<x> 'y' \"z\"".into()))
        );
    }

    #[test]
    fn s3_error_documents() {
        let xml = b"<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Error><Code>NoSuchKey</Code><Message>The specified key does not exist.</Message><RequestId>tx0001</RequestId></Error>";
        let e = parse_s3_error(xml).expect("S3 error");
        assert_eq!(
            (e.code.as_str(), e.request_id.as_str()),
            ("NoSuchKey", "tx0001")
        );
        assert_eq!(
            parse_s3_error(b"<html><head><title>502 Bad Gateway</title></head></html>"),
            None
        );
        assert_eq!(parse_s3_error(b""), None);
        assert_eq!(parse_s3_error(b"{\"errors\":[]}"), None);
        assert_eq!(
            parse_s3_error(b"<ListBucketResult></ListBucketResult>"),
            None
        );
    }

    #[test]
    fn titles() {
        assert_eq!(
            html_title(b"<html><head><TITLE> 502 Bad Gateway </TITLE>"),
            Some("502 Bad Gateway".into())
        );
        assert_eq!(html_title(b"<html>"), None);
    }

    #[test]
    fn urls_and_presigned_queries() {
        let u = Url::parse("http://10.77.0.30:9000/capdiag/docker/x/data?X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential=AK%2F20261125%2Fus-east-1%2Fs3%2Faws4_request&X-Amz-Date=20261125T172344Z&X-Amz-Expires=1200&X-Amz-SignedHeaders=host&X-Amz-Signature=abc").expect("url");
        assert_eq!(
            (u.host.as_str(), u.port, u.path()),
            ("10.77.0.30", 9000, "/capdiag/docker/x/data")
        );
        assert_eq!(u.authority(), "10.77.0.30:9000");
        let p = presigned(&u).expect("presigned");
        assert!(p.v4);
        assert_eq!(p.expires_in, Some(1200));
        assert_eq!(p.signed_headers, ["host"]);
        assert_eq!(
            p.credential.as_deref(),
            Some("AK/20261125/us-east-1/s3/aws4_request")
        );
        assert_eq!(
            p.signed_at,
            parse_http_date("Wed, 25 Nov 2026 17:23:44 GMT")
        );
        assert_eq!(
            Url::parse("https://[::1]/t").map(|u| (u.host, u.port)),
            Some(("::1".into(), 443))
        );
        assert_eq!(target_path_query("http://h:1/a?b=c"), "/a?b=c");
        assert!(presigned(&Url::parse("http://h/a?b=c").expect("url")).is_none());
    }

    #[test]
    fn a_signed_request_is_recognised_as_presigned_urls_are() {
        use crate::rules::testing::exchange;
        for (target, signed) in [
            ("/b/k?X-Amz-Signature=ab&X-Amz-Date=20261125T120000Z", true),
            ("/b/k?X-Amz-Date=20261125T120000Z&X-Amz-Signature", true),
            ("/b/k?Signature=x&AWSAccessKeyId=AK&Expires=1", true),
            ("/b/k?Signature=x", false),
            ("/b/k?X-Amz-SignatureX=ab", false),
            ("/b/k?x=X-Amz-Signature", false),
            ("/b/k", false),
        ] {
            let req = format!("GET {target} HTTP/1.1\r\nHost: s3\r\n\r\n");
            let ex = exchange("10.0.0.1:1", "10.0.0.2:9000", 0, 1, 0, req.as_bytes(), b"");
            let req = ex.request.as_ref().expect("request");
            let url = Url::parse(&format!("http://s3{target}")).expect("url");
            assert_eq!(
                (is_s3_request(req), presigned(&url).is_some()),
                (signed, signed),
                "{target}"
            );
        }
        let ex = exchange(
            "10.0.0.1:1",
            "10.0.0.2:9000",
            0,
            1,
            0,
            b"GET /b/k HTTP/1.1\r\nAuthorization: AWS4-HMAC-SHA256 Credential=AK/x\r\n\r\n",
            b"",
        );
        assert!(is_s3_request(ex.request.as_ref().expect("request")));
    }

    #[test]
    fn dates() {
        assert_eq!(parse_amz_date("19700101T000000Z"), Some(0));
        assert_eq!(parse_amz_date("20000301T000000Z"), Some(951_868_800));
        assert_eq!(parse_http_date("Thu, 01 Jan 1970 00:01:00 GMT"), Some(60));
        assert_eq!(parse_amz_date("2026-11-25"), None);
        assert_eq!(human_duration(3725), "1h 2m 5s");
    }
}
