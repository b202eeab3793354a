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

/// Every tag of `page` is one of [`TAGS`].
pub fn assert_only_known_tags(what: &str, page: &str) {
    for (i, _) in page.match_indices('<') {
        let name: String = page
            .get(i + 1..)
            .unwrap_or_default()
            .trim_start_matches('/')
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '!')
            .collect();
        assert!(
            TAGS.iter().any(|t| t.eq_ignore_ascii_case(&name)),
            "{what}: unexpected tag <{name}> at byte {i}: {}",
            page.get(i..(i + 80).min(page.len())).unwrap_or_default()
        );
    }
}
