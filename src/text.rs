//! Text for people: how bytes from a capture (and names from the command line) are shown.
//!
//! Captures are hostile input. A header value, an HTML title, a URI or a file name may carry
//! terminal escape sequences (`ESC [2J` clears the screen, `ESC ]0;…BEL` retitles the window),
//! 8-bit C1 controls that some terminals obey (U+009B is a one-character CSI), or bidirectional
//! overrides that make a line read other than it is. Every printer for people goes through
//! [`printable`] (or [`printable_bytes`], [`printable_path`]) for anything it did not write
//! itself, so that what reaches a terminal or a page is shown, never obeyed:
//!
//! | what | shown as |
//! | --- | --- |
//! | tab, line feed, carriage return | `\t`, `\n`, `\r` |
//! | other C0 controls (U+0000–U+001F), DEL | `\x1b`, `\x7f` |
//! | C1 controls (U+0080–U+009F) | `\u{9b}` |
//! | bidirectional embeddings, overrides, isolates (U+202A–U+202E, U+2066–U+2069) | `\u{202e}` |
//! | bytes that are not UTF-8 (a raw `0x9b` among them) | `\x9b` |
//!
//! JSON output keeps the exact text instead (serde escapes controls); only bytes that are not
//! UTF-8 are written as `\xNN` there too ([`lossless`]), since a JSON string cannot hold them.
//!
//! A backslash from the capture is shown as it is, so `\x1b` on screen can be four characters
//! of the capture as well as an escaped ESC; the JSON output tells them apart.

use std::borrow::Cow;
use std::fmt::Write as _;
use std::path::Path;

/// The text of `b` with every valid UTF-8 sequence kept as it is and every byte that is not
/// UTF-8 written as `\xNN`: the form JSON output carries (nothing else is escaped).
pub fn lossless(b: &[u8]) -> String {
    let mut out = String::with_capacity(b.len());
    for chunk in b.utf8_chunks() {
        out.push_str(chunk.valid());
        for byte in chunk.invalid() {
            let _ = write!(out, "\\x{byte:02x}");
        }
    }
    out
}

/// Whether a terminal or a page could take `c` as a command rather than as text.
pub fn is_unsafe(c: char) -> bool {
    matches!(c,
        '\u{0}'..='\u{1f}'
        | '\u{7f}'..='\u{9f}'
        | '\u{202a}'..='\u{202e}'
        | '\u{2066}'..='\u{2069}')
}

/// `s` with every character of [`is_unsafe`] escaped (see the module's table); borrowed when
/// there is nothing to escape.
pub fn printable(s: &str) -> Cow<'_, str> {
    if !s.chars().any(is_unsafe) {
        return Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(s.len() + 8);
    for c in s.chars() {
        push_printable(&mut out, c);
    }
    Cow::Owned(out)
}

fn push_printable(out: &mut String, c: char) {
    match c {
        '\t' => out.push_str("\\t"),
        '\n' => out.push_str("\\n"),
        '\r' => out.push_str("\\r"),
        '\u{0}'..='\u{1f}' | '\u{7f}' => {
            let _ = write!(out, "\\x{:02x}", u32::from(c));
        }
        c if is_unsafe(c) => {
            let _ = write!(out, "\\u{{{:x}}}", u32::from(c));
        }
        c => out.push(c),
    }
}

/// Bytes as [`printable`] text, each byte that is not UTF-8 as `\xNN`.
pub fn printable_bytes(b: &[u8]) -> String {
    let mut out = String::with_capacity(b.len());
    for chunk in b.utf8_chunks() {
        out.push_str(&printable(chunk.valid()));
        for byte in chunk.invalid() {
            let _ = write!(out, "\\x{byte:02x}");
        }
    }
    out
}

/// A path as the user gave it, [`printable`] (a name that is not UTF-8 shows its bytes as `\xNN`).
pub fn printable_path(p: &Path) -> String {
    printable_bytes(p.as_os_str().as_encoded_bytes())
}

/// Shortens `s` to `max` characters, keeping its start and end (`…` between them). Applied
/// to text already made [`printable`], it never cuts a control character in two.
pub fn shorten(s: &str, max: usize) -> String {
    let n = s.chars().count();
    if n <= max || max == 0 {
        return s.to_string();
    }
    let head = (max - 1) * 2 / 3;
    let tail = max - 1 - head;
    let mut out: String = s.chars().take(head).collect();
    out.push('…');
    out.extend(s.chars().skip(n - tail));
    out
}

/// [`printable`], then [`shorten`]ed to `max` characters.
pub fn fit(s: &str, max: usize) -> String {
    shorten(&printable(s), max)
}

/// `s` as one word of a POSIX shell command: as it is when it holds only characters no shell
/// reads specially, otherwise in single quotes (a `'` inside becomes `'\''`). Whatever `s`
/// holds (`'`, `$(…)`, backquotes, `;`, newlines), the shell reads it back as one argument,
/// unchanged.
pub fn shell_quote(s: &str) -> Cow<'_, str> {
    if !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"/._-+:=@,%".contains(&b))
    {
        Cow::Borrowed(s)
    } else {
        Cow::Owned(format!("'{}'", s.replace('\'', "'\\''")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn controls_are_escaped_and_the_rest_kept() {
        assert_eq!(printable("plain text, é ü 中"), "plain text, é ü 中");
        assert!(matches!(printable("plain"), Cow::Borrowed(_)));
        assert_eq!(
            printable("\u{1b}[2J\u{1b}]0;owned\u{7}"),
            "\\x1b[2J\\x1b]0;owned\\x07"
        );
        assert_eq!(printable("a\tb\nc\rd\u{0}"), "a\\tb\\nc\\rd\\x00");
        assert_eq!(
            printable("\u{7f}\u{80}\u{9b}\u{9f}\u{a0}"),
            "\\x7f\\u{80}\\u{9b}\\u{9f}\u{a0}"
        );
        assert_eq!(
            printable("\u{202a}\u{202e}\u{2066}\u{2069}\u{2029}"),
            "\\u{202a}\\u{202e}\\u{2066}\\u{2069}\u{2029}"
        );
    }

    #[test]
    fn every_unsafe_character_leaves_no_trace() {
        for c in (0u32..0x3000).filter_map(char::from_u32) {
            let s = c.to_string();
            let p = printable(&s);
            assert!(!p.chars().any(is_unsafe), "{c:?} -> {p:?}");
            assert_eq!(is_unsafe(c), p != s, "{c:?}");
        }
    }

    #[test]
    fn bytes_that_are_not_utf8_are_shown_as_hex() {
        assert_eq!(printable_bytes(b"a\x9bb\xffc"), "a\\x9bb\\xffc");
        assert_eq!(printable_bytes(b"\x1b[31m\xc2\x9b"), "\\x1b[31m\\u{9b}");
        assert_eq!(lossless(b"a\x1b\xff"), "a\u{1b}\\xff");
        assert_eq!(lossless("héllo".as_bytes()), "héllo");
        assert_eq!(
            printable_path(Path::new("cap\u{1b}]0;x\u{7}.pcap")),
            "cap\\x1b]0;x\\x07.pcap"
        );
    }

    #[test]
    fn escaping_twice_changes_nothing() {
        let once = printable("\u{1b}[2J\u{9b}\u{202e}x\\y").into_owned();
        assert_eq!(printable(&once), once);
    }

    #[test]
    fn shortened_in_the_middle_after_escaping() {
        assert_eq!(shorten("abcdef", 10), "abcdef");
        let s = shorten("/v2/library/alpine/blobs/sha256:0123456789", 20);
        assert_eq!(s.chars().count(), 20);
        assert!(s.starts_with("/v2/library/") && s.ends_with("456789"));
        let f = fit(
            &format!("{}\u{1b}[2J{}", "a".repeat(50), "b".repeat(50)),
            30,
        );
        assert_eq!(f.chars().count(), 30);
        assert!(!f.chars().any(is_unsafe));
    }

    #[test]
    fn shell_words() {
        assert_eq!(shell_quote("/tmp/a.pcap"), "/tmp/a.pcap");
        assert_eq!(shell_quote("a b.pcap"), "'a b.pcap'");
        assert_eq!(shell_quote(""), "''");
        assert_eq!(shell_quote("it's $(x)"), "'it'\\''s $(x)'");
    }
}
