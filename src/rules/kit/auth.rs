//! `WWW-Authenticate` challenges (RFC 7235): their parameters, read without a full parser.

/// A parameter of a challenge (`Bearer realm="...",service="...",error="invalid_token"`), by
/// name (case-insensitive), quoted or not; the first one when several challenges carry it.
pub fn auth_param(value: &str, name: &str) -> Option<String> {
    let b = value.as_bytes();
    let mut i = 0;
    while i < b.len() {
        // Separators, then a token: a scheme (no `=` after it) or a parameter's name.
        while b.get(i).is_some_and(|c| matches!(c, b' ' | b'\t' | b',')) {
            i += 1;
        }
        let start = i;
        while b
            .get(i)
            .is_some_and(|c| !matches!(c, b' ' | b'\t' | b',' | b'='))
        {
            i += 1;
        }
        let token = value.get(start..i)?;
        let mut j = i;
        while b.get(j).is_some_and(|c| matches!(c, b' ' | b'\t')) {
            j += 1;
        }
        if b.get(j) != Some(&b'=') {
            if i == start {
                i += 1;
            }
            continue;
        }
        j += 1;
        while b.get(j).is_some_and(|c| matches!(c, b' ' | b'\t')) {
            j += 1;
        }
        let (v, next) = if b.get(j) == Some(&b'"') {
            let from = j + 1;
            let rest = b.get(from..)?;
            match memchr::memchr2(b'"', b'\\', rest) {
                // No escape before the closing quote: the value as it stands.
                Some(q) if rest.get(q) == Some(&b'"') => {
                    (value.get(from..from + q)?.to_string(), from + q + 1)
                }
                _ => {
                    // A quoted string with `\` escapes.
                    let mut out = String::new();
                    let mut k = from;
                    let mut chars = value.get(k..)?.chars();
                    loop {
                        match chars.next() {
                            None => break,
                            Some('"') => {
                                k += 1;
                                break;
                            }
                            Some('\\') => {
                                k += 1;
                                if let Some(c) = chars.next() {
                                    out.push(c);
                                    k += c.len_utf8();
                                }
                            }
                            Some(c) => {
                                out.push(c);
                                k += c.len_utf8();
                            }
                        }
                    }
                    (out, k)
                }
            }
        } else {
            let mut k = j;
            while b.get(k).is_some_and(|c| !matches!(c, b' ' | b'\t' | b',')) {
                k += 1;
            }
            (value.get(j..k)?.to_string(), k)
        };
        if token.eq_ignore_ascii_case(name) {
            return (!v.is_empty()).then_some(v);
        }
        i = next;
    }
    None
}

/// The realm of a `WWW-Authenticate: Bearer realm="...",...` (or Basic) header.
pub fn realm_of(value: &str) -> Option<String> {
    auth_param(value, "realm")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parameters_quoted_or_not() {
        assert_eq!(
            realm_of(r#"Bearer realm="http://10.77.0.60/token",service="capdiag-registry""#)
                .as_deref(),
            Some("http://10.77.0.60/token")
        );
        assert_eq!(
            realm_of(r#"Basic realm="Registry""#).as_deref(),
            Some("Registry")
        );
        assert_eq!(realm_of("Bearer service=x"), None);
        let v = r#"Bearer realm="https://auth/token",service="reg",scope="repository:a:push,pull",error="invalid_token""#;
        assert_eq!(auth_param(v, "error").as_deref(), Some("invalid_token"));
        assert_eq!(
            auth_param(v, "scope").as_deref(),
            Some("repository:a:push,pull")
        );
        // `service=` inside another parameter's value is not the parameter.
        assert_eq!(
            auth_param(r#"Bearer realm="http://x/?service=a""#, "service"),
            None
        );
    }
}
