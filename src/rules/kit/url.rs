//! URLs as they appear in headers and request targets: split, not normalised.

/// A URL split into its parts (no normalisation).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Url {
    pub scheme: String,
    pub host: String,
    pub port: u16,
    /// Path and query as sent (`/bucket/key?X-Amz-...`).
    pub path_query: String,
}

impl Url {
    pub fn parse(s: &str) -> Option<Url> {
        let (scheme, rest) = s.trim().split_once("://")?;
        let scheme = scheme.to_ascii_lowercase();
        let (authority, path_query) = match rest.find(['/', '?']) {
            Some(i) => (rest.get(..i)?, rest.get(i..)?),
            None => (rest, "/"),
        };
        let authority = authority.rsplit_once('@').map_or(authority, |(_, a)| a);
        let default_port = if scheme == "https" { 443 } else { 80 };
        let (host, port) = if let Some(v6) = authority.strip_prefix('[') {
            let (h, rest) = v6.split_once(']')?;
            let port = rest
                .strip_prefix(':')
                .and_then(|p| p.parse().ok())
                .unwrap_or(default_port);
            (h.to_string(), port)
        } else {
            match authority.rsplit_once(':') {
                Some((h, p)) => (h.to_string(), p.parse().ok()?),
                None => (authority.to_string(), default_port),
            }
        };
        Some(Url {
            scheme,
            host,
            port,
            path_query: if path_query.starts_with('?') {
                format!("/{path_query}")
            } else {
                path_query.to_string()
            },
        })
    }

    /// `host:port` as it would appear in a `Host` header (port omitted when default).
    pub fn authority(&self) -> String {
        let default = if self.scheme == "https" { 443 } else { 80 };
        let host = if self.host.contains(':') {
            format!("[{}]", self.host)
        } else {
            self.host.clone()
        };
        if self.port == default {
            host
        } else {
            format!("{host}:{}", self.port)
        }
    }

    pub fn query(&self) -> &str {
        self.path_query.split_once('?').map_or("", |(_, q)| q)
    }

    pub fn path(&self) -> &str {
        self.path_query
            .split_once('?')
            .map_or(self.path_query.as_str(), |(p, _)| p)
    }
}

/// Percent-decodes a query component (`+` stays `+`: S3 signs it as is).
pub fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while let Some(&c) = b.get(i) {
        if c == b'%'
            && let Some(v) = b
                .get(i + 1..i + 3)
                .and_then(|h| std::str::from_utf8(h).ok())
                .and_then(|h| u8::from_str_radix(h, 16).ok())
        {
            out.push(v);
            i += 3;
            continue;
        }
        out.push(c);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// A query parameter's decoded value, by exact name.
pub fn query_param(query: &str, name: &str) -> Option<String> {
    query.split('&').find_map(|kv| {
        let (k, v) = kv.split_once('=').unwrap_or((kv, ""));
        (k == name).then(|| percent_decode(v))
    })
}

/// The request target as path and query: origin-form as is, absolute-form (through a proxy)
/// without its scheme and authority.
pub fn target_path_query(uri: &str) -> String {
    if uri.contains("://") {
        Url::parse(uri)
            .map(|u| u.path_query)
            .unwrap_or_else(|| uri.to_string())
    } else {
        uri.to_string()
    }
}

/// The path (and query) of a request target, read in place: origin form as it is, absolute form
/// (through a forward proxy) without its scheme and authority. The byte-level twin of
/// [`target_path_query`], for checks made on every request.
#[inline]
pub fn target_path(uri: &[u8]) -> &[u8] {
    if uri.starts_with(b"/") {
        return uri;
    }
    memchr::memmem::find(uri, b"://")
        .and_then(|i| uri.get(i + 3..))
        .and_then(|r| memchr::memchr(b'/', r).and_then(|j| r.get(j..)))
        .unwrap_or(uri)
}
