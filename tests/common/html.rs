//! What an HTML report may hold.

#![allow(dead_code)]

/// The tags a report may hold: anything else came from a capture unescaped.
const TAGS: &[&str] = &[
    "!DOCTYPE",
    "html",
    "head",
    "meta",
    "title",
    "style",
    "body",
    "header",
    "h1",
    "h2",
    "h3",
    "p",
    "ul",
    "li",
    "span",
    "strong",
    "code",
    "section",
    "table",
    "thead",
    "tbody",
    "tr",
    "th",
    "td",
    "div",
    "article",
    "figure",
    "figcaption",
    "dl",
    "dt",
    "dd",
    "footer",
    "svg",
    "g",
    "text",
    "line",
    "rect",
    "polygon",
];

/// The attributes a report's tags may carry (and any `data-…`): an event handler, a style, a
/// link or a source would have come from a capture.
const ATTRIBUTES: &[&str] = &[
    "lang",
    "charset",
    "http-equiv",
    "content",
    "name",
    "class",
    "id",
    "xmlns",
    "role",
    "viewBox",
    "width",
    "height",
    "aria-label",
    "x",
    "y",
    "x1",
    "y1",
    "x2",
    "y2",
    "text-anchor",
    "points",
    "rx",
];

/// Every tag of `page` is one of [`TAGS`], and every attribute one of [`ATTRIBUTES`] or a
/// `data-` attribute, its value quoted (the page's template writes every value in double
/// quotes, with `"`, `<`, `>` and `&` escaped inside, so a tag ends at the first `>`).
pub fn assert_only_known_tags(what: &str, page: &str) {
    for (i, _) in page.match_indices('<') {
        let rest = page.get(i + 1..).unwrap_or_default();
        let name: String = rest
            .trim_start_matches('/')
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '!')
            .collect();
        let at = || page.get(i..(i + 120).min(page.len())).unwrap_or_default();
        assert!(
            TAGS.iter().any(|t| t.eq_ignore_ascii_case(&name)),
            "{what}: unexpected tag <{name}> at byte {i}: {}",
            at()
        );
        if name == "!DOCTYPE" || rest.starts_with('/') {
            continue;
        }
        let tag = rest
            .get(name.len()..rest.find('>').unwrap_or(rest.len()))
            .unwrap_or_default();
        let mut attrs = tag.trim();
        while !attrs.is_empty() {
            let (attr, after) = attrs.split_once("=\"").unwrap_or_else(|| {
                panic!(
                    "{what}: an attribute without a quoted value at byte {i}: {}",
                    at()
                )
            });
            assert!(
                ATTRIBUTES.contains(&attr)
                    || (attr.starts_with("data-")
                        && attr.len() > 5
                        && attr.bytes().all(|b| b.is_ascii_lowercase() || b == b'-')),
                "{what}: unexpected attribute {attr:?} at byte {i}: {}",
                at()
            );
            let (_value, next) = after
                .split_once('"')
                .unwrap_or_else(|| panic!("{what}: an unterminated value at byte {i}: {}", at()));
            attrs = next.trim_start();
        }
    }
}
