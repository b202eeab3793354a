//! Hostile content: text from a capture never reaches the terminal raw.
//!
//! Each capture is built here from bytes (Ethernet/IPv4/TCP between documentation-range
//! addresses of 10.0.0.0/24, never sent anywhere). Its HTML title, S3 XML `<Code>` and
//! `<Message>`, `Server`, `Location`, `Www-Authenticate` realm and URIs carry terminal escape
//! sequences (`ESC [2J`, `ESC ]0;owned BEL`), an 8-bit CSI (U+009B, and the raw byte 0x9b), DEL
//! and a right-to-left override (U+202E). Every command that prints for people (`analyze`,
//! `http`, `watch -r`, `explain`, error messages) must show them escaped, and the JSON output
//! must keep the exact text.

use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// What the capture carries wherever a field can: every kind of sequence the issue names.
const EVIL: &str = "\u{1b}[2J\u{1b}]0;owned\u{7}\u{9b}31m\u{202e}gpj.exe\u{7f}";
/// The same as a terminal shows it after escaping.
const EVIL_SHOWN: &str = "\\x1b[2J\\x1b]0;owned\\x07\\u{9b}31m\\u{202e}gpj.exe\\x7f";
/// What a header value or a request target can carry through an HTTP parser (httparse, like
/// the servers and clients, refuses C0 controls and DEL there but passes bytes from 0x80 up as
/// obs-text): an 8-bit CSI and a right-to-left override, UTF-8 encoded.
const EVIL8: &str = "\u{9b}31m\u{202e}gpj.exe";
const EVIL8_SHOWN: &str = "\\u{9b}31m\\u{202e}gpj.exe";

fn bin() -> Command {
    Command::new(env!("CARGO_BIN_EXE_capdiag"))
}

fn run(args: &[&str]) -> Output {
    bin().args(args).output().expect("run capdiag")
}

// ---- A capture built from bytes ----

const SYN: u8 = 0x02;
const ACK: u8 = 0x10;
const PSH: u8 = 0x08;
const FIN: u8 = 0x01;

struct Pcap {
    bytes: Vec<u8>,
    t: f64,
}

impl Pcap {
    fn new() -> Pcap {
        let mut bytes = Vec::new();
        bytes.extend_from_slice(&0xa1b2_c3d4u32.to_le_bytes());
        bytes.extend_from_slice(&2u16.to_le_bytes());
        bytes.extend_from_slice(&4u16.to_le_bytes());
        bytes.extend_from_slice(&0i32.to_le_bytes());
        bytes.extend_from_slice(&0u32.to_le_bytes());
        bytes.extend_from_slice(&262_144u32.to_le_bytes());
        bytes.extend_from_slice(&1u32.to_le_bytes());
        // 2026-12-04 12:00:00 UTC
        Pcap {
            bytes,
            t: 1_796_385_600.0,
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn packet(
        &mut self,
        src: ([u8; 4], u16),
        dst: ([u8; 4], u16),
        seq: u32,
        ack: u32,
        flags: u8,
        payload: &[u8],
    ) {
        let mut tcp = Vec::new();
        tcp.extend_from_slice(&src.1.to_be_bytes());
        tcp.extend_from_slice(&dst.1.to_be_bytes());
        tcp.extend_from_slice(&seq.to_be_bytes());
        tcp.extend_from_slice(&ack.to_be_bytes());
        tcp.push(5 << 4);
        tcp.push(flags);
        tcp.extend_from_slice(&65535u16.to_be_bytes());
        tcp.extend_from_slice(&[0, 0, 0, 0]);
        let total = (20 + tcp.len() + payload.len()) as u16;
        let mut f = vec![2, 0, 0, 0, 0, 2, 2, 0, 0, 0, 0, 1, 8, 0];
        f.extend_from_slice(&[0x45, 0]);
        f.extend_from_slice(&total.to_be_bytes());
        f.extend_from_slice(&[0, 1, 0x40, 0, 64, 6, 0, 0]);
        f.extend_from_slice(&src.0);
        f.extend_from_slice(&dst.0);
        f.extend_from_slice(&tcp);
        f.extend_from_slice(payload);
        let secs = self.t.floor();
        let usecs = ((self.t - secs) * 1e6).round() as u32;
        self.bytes.extend_from_slice(&(secs as u32).to_le_bytes());
        self.bytes.extend_from_slice(&usecs.to_le_bytes());
        self.bytes
            .extend_from_slice(&(f.len() as u32).to_le_bytes());
        self.bytes
            .extend_from_slice(&(f.len() as u32).to_le_bytes());
        self.bytes.extend_from_slice(&f);
        self.t += 0.001;
    }

    /// A whole connection: handshake, the request, the response, FINs.
    fn exchange(&mut self, c: ([u8; 4], u16), s: ([u8; 4], u16), req: &[u8], resp: &[u8]) {
        let (cs, ss) = (1000u32, 5000u32);
        self.packet(c, s, cs, 0, SYN, b"");
        self.packet(s, c, ss, cs + 1, SYN | ACK, b"");
        self.packet(c, s, cs + 1, ss + 1, ACK, b"");
        self.packet(c, s, cs + 1, ss + 1, ACK | PSH, req);
        let cend = cs + 1 + req.len() as u32;
        self.packet(s, c, ss + 1, cend, ACK | PSH, resp);
        let send = ss + 1 + resp.len() as u32;
        self.packet(s, c, send, cend, ACK | FIN, b"");
        self.packet(c, s, cend, send + 1, ACK | FIN, b"");
    }

    fn write(&self, name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("capdiag-hostile-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("tmp dir");
        let p = dir.join(name);
        std::fs::write(&p, &self.bytes).expect("write capture");
        p
    }
}

const CLIENT: [u8; 4] = [10, 0, 0, 10];
const REGISTRY: [u8; 4] = [10, 0, 0, 20];
const GATEWAY: [u8; 4] = [10, 0, 0, 30];
const S3: [u8; 4] = [10, 0, 0, 40];
const REALM: [u8; 4] = [10, 0, 0, 50];

fn response(head: &str, body: &[u8]) -> Vec<u8> {
    let mut r = format!("{head}Content-Length: {}\r\n\r\n", body.len()).into_bytes();
    r.extend_from_slice(body);
    r
}

/// An S3-signed request whose URI carries `EVIL8` (not percent-encoded, as a client may send
/// it) and a raw 0x9b, answered 404 by a gateway whose `Server` carries `EVIL8` and whose HTML
/// `<title>` carries `EVIL` and a raw 0x9b. A header line with C0 controls (`X-Evil`) is one
/// the parser passes over, so nothing of it may appear either.
fn s3_html_error() -> PathBuf {
    let mut p = Pcap::new();
    let mut req = b"GET /bucket/key-".to_vec();
    req.extend_from_slice(EVIL8.as_bytes());
    req.extend_from_slice(b"-\x9b HTTP/1.1\r\nHost: 10.0.0.30:9000\r\nAuthorization: AWS4-HMAC-SHA256 Credential=AK/20261204/us-east-1/s3/aws4_request, SignedHeaders=host, Signature=00\r\n\r\n");
    let body =
        format!("<html><head><title>404 {EVIL} \u{9b}</title></head><body>not found</body></html>");
    let mut body = body.into_bytes();
    // A raw 0x9b in the title as well (not UTF-8).
    let at = body.windows(8).position(|w| w == b"</title>").unwrap_or(0);
    body.insert(at, 0x9b);
    let resp = response(
        &format!(
            "HTTP/1.1 404 Not Found\r\nServer: nginx {EVIL8}\r\nX-Evil: {EVIL}\r\nContent-Type: text/html\r\n"
        ),
        &body,
    );
    p.exchange((REGISTRY, 41000), (GATEWAY, 9000), &req, &resp);
    p.write("s3-html-error.pcap")
}

/// A 307 to a presigned S3 URL whose path carries `EVIL8`, a quote and a command
/// substitution, then the follow-up refused 403 with an S3 XML error whose `<Code>` and
/// `<Message>` carry `EVIL`.
fn presigned_403(method: &str) -> PathBuf {
    let mut p = Pcap::new();
    let path = format!(
        "/bucket/blob-{EVIL8}-'$(touch${{IFS}}PWNED)'?X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential=AK%2F20261204%2Fus-east-1%2Fs3%2Faws4_request&X-Amz-Date=20261204T115900Z&X-Amz-Expires=1200&X-Amz-SignedHeaders=host&X-Amz-Signature=abcd"
    );
    let location = format!("http://10.0.0.40:9000{path}");
    let req = format!("{method} /v2/lab/blobs/sha256:abc HTTP/1.1\r\nHost: 10.0.0.20:5000\r\n\r\n");
    let resp = response(
        &format!(
            "HTTP/1.1 307 Temporary Redirect\r\nLocation: {location}\r\nDocker-Distribution-Api-Version: registry/2.0\r\n"
        ),
        b"",
    );
    p.exchange((CLIENT, 42000), (REGISTRY, 5000), req.as_bytes(), &resp);
    let req = format!("{method} {path} HTTP/1.1\r\nHost: proxy.example:9000\r\n\r\n");
    let xml = format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Error><Code>SignatureDoesNotMatch{EVIL}</Code><Message>The request signature {EVIL} we calculated does not match</Message><RequestId>1</RequestId></Error>"
    );
    let resp = if method == "HEAD" {
        b"HTTP/1.1 403 Forbidden\r\nContent-Type: application/xml\r\nContent-Length: 0\r\n\r\n"
            .to_vec()
    } else {
        response(
            "HTTP/1.1 403 Forbidden\r\nContent-Type: application/xml\r\n",
            xml.as_bytes(),
        )
    };
    p.exchange((CLIENT, 42001), (S3, 9000), req.as_bytes(), &resp);
    p.write(&format!("presigned-403-{method}.pcap"))
}

/// The realm a hostile 401 names: escapes, a quote and a command substitution.
fn hostile_realm() -> String {
    format!("http://10.0.0.50:8080/token-{EVIL8}-'$(touch${{IFS}}PWNED)'`touch${{IFS}}PWNED2`;x")
}

/// A 401 whose `Www-Authenticate` realm is [`hostile_realm`], then SYNs to the realm that
/// nobody answers.
fn auth_realm_unreachable() -> PathBuf {
    let mut p = Pcap::new();
    let req = b"GET /v2/ HTTP/1.1\r\nHost: 10.0.0.20:5000\r\n\r\n";
    let resp = response(
        &format!(
            "HTTP/1.1 401 Unauthorized\r\nWww-Authenticate: Bearer realm=\"{}\",service=\"registry\"\r\nDocker-Distribution-Api-Version: registry/2.0\r\n",
            hostile_realm()
        ),
        b"",
    );
    p.exchange((CLIENT, 43000), (REGISTRY, 5000), req, &resp);
    for dt in [0.0, 1.0, 2.0, 4.0] {
        let t = p.t;
        p.t += dt;
        p.packet((CLIENT, 43001), (REALM, 8080), 7000, 0, SYN, b"");
        p.t = t + dt;
    }
    p.t += 10.0;
    p.packet((CLIENT, 43002), (REGISTRY, 5000), 9000, 0, SYN, b"");
    p.write("auth-realm-unreachable.pcap")
}

// ---- What may reach a terminal ----

/// Panics when `bytes` (standard output or error of a printer for people) hold anything a
/// terminal could obey: not UTF-8 (a raw C1 byte), a C0 control but the line feed, DEL, a C1
/// control, or a bidirectional override or isolate.
fn assert_terminal_safe(what: &str, bytes: &[u8]) {
    let text = std::str::from_utf8(bytes)
        .unwrap_or_else(|e| panic!("{what}: output is not UTF-8 ({e}): {bytes:?}"));
    for (i, c) in text.char_indices() {
        let bad = matches!(c,
            '\u{0}'..='\u{9}' | '\u{b}'..='\u{1f}' | '\u{7f}'..='\u{9f}'
            | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}');
        assert!(
            !bad,
            "{what}: raw {c:?} at byte {i}: …{}…",
            text.get(i.saturating_sub(60)..(i + 20).min(text.len()))
                .unwrap_or_default()
        );
    }
}

fn assert_both_safe(what: &str, o: &Output) {
    assert_terminal_safe(&format!("{what} (stdout)"), &o.stdout);
    assert_terminal_safe(&format!("{what} (stderr)"), &o.stderr);
}

fn json(o: &Output) -> Value {
    serde_json::from_slice(&o.stdout).expect("JSON output")
}

/// The JSON findings of `analyze`.
fn findings(cap: &Path) -> Vec<Value> {
    let o = run(&[
        "analyze",
        "--format",
        "json",
        cap.to_str().unwrap_or_default(),
    ]);
    json(&o)["findings"].as_array().cloned().unwrap_or_default()
}

/// Runs every printer for people over `cap` and checks what they print; returns the text
/// outputs of `analyze` and `watch -r` (which show the same findings).
fn people_outputs(cap: &Path) -> Vec<String> {
    let f = cap.to_str().unwrap_or_default();
    let mut texts = Vec::new();
    for args in [
        vec!["analyze", f],
        vec!["analyze", "-j", "1", f],
        vec!["http", f],
        vec!["watch", "-r", f],
        vec!["watch", "-r", f, "--format", "text"],
    ] {
        let o = run(&args);
        assert_both_safe(&args.join(" "), &o);
        texts.push(String::from_utf8_lossy(&o.stdout).into_owned());
    }
    texts
}

#[test]
fn an_html_title_server_and_uri_are_shown_escaped() {
    let cap = s3_html_error();
    let texts = people_outputs(&cap);
    let analyze = &texts[0];
    assert!(analyze.contains("[s3-error-not-xml]"), "{analyze}");
    // The title and the Server header are quoted in the detail, escaped: the raw 0x9b byte
    // too, which is not UTF-8.
    let flat = analyze.split_whitespace().collect::<Vec<_>>().join(" ");
    assert!(
        flat.contains(&format!("Server: nginx {EVIL8_SHOWN}")),
        "{flat}"
    );
    assert!(
        flat.contains(&format!("404 {EVIL_SHOWN} \\u{{9b}}\\x9b")),
        "{flat}"
    );
    assert_eq!(texts[3], texts[4]);
    assert!(texts[3].contains("[s3-error-not-xml]"), "{}", texts[3]);
    // The `http` table shows the URI escaped (cut in the middle to its column).
    assert!(
        texts[2].contains("/bucket/key-\\u{9b}31m\\u{202e}"),
        "{}",
        texts[2]
    );
    // JSON keeps the exact text, and the byte that is not UTF-8 as \x9b.
    let f = findings(&cap);
    assert_eq!(f.len(), 1, "{f:?}");
    let detail = f[0]["detail"].as_str().unwrap_or_default();
    assert!(
        detail.contains(&format!("Server: nginx {EVIL8}")),
        "{detail}"
    );
    assert!(
        detail.contains(&format!("404 {EVIL} \u{9b}\\x9b")),
        "{detail}"
    );
    let o = run(&["http", "--format", "json", cap.to_str().unwrap_or_default()]);
    let v = json(&o);
    let uri = v["exchanges"][0]["request"]["uri"]
        .as_str()
        .unwrap_or_default();
    assert_eq!(uri, format!("/bucket/key-{EVIL8}-\\x9b"));
}

#[test]
fn a_location_and_an_s3_error_code_are_shown_escaped() {
    let cap = presigned_403("GET");
    let texts = people_outputs(&cap);
    let analyze = &texts[0];
    assert!(analyze.contains("[presigned-url-403]"), "{analyze}");
    let flat = analyze.split_whitespace().collect::<Vec<_>>().join(" ");
    assert!(
        flat.contains(&format!("SignatureDoesNotMatch{EVIL_SHOWN}")),
        "{flat}"
    );
    assert!(
        flat.contains(&format!("The request signature {EVIL_SHOWN} we calculated")),
        "{flat}"
    );
    assert!(texts[3].contains("[presigned-url-403]"), "{}", texts[3]);
    let f = findings(&cap);
    assert_eq!(f.len(), 1, "{f:?}");
    let detail = f[0]["detail"].as_str().unwrap_or_default();
    assert!(
        detail.contains(&format!("SignatureDoesNotMatch{EVIL}")),
        "{detail}"
    );
    // The Location is quoted in the evidence.
    let evidence = f[0]["evidence"].to_string();
    assert!(evidence.contains(&format!("blob-{EVIL8}")), "{evidence}");
}

/// A suggested command, from the JSON (exact text): the words between the backquotes that
/// start with `start`.
fn suggested(text: &str, start: &str) -> String {
    let at = text
        .find(&format!("`{start}"))
        .unwrap_or_else(|| panic!("no `{start}… in {text}"));
    let rest = &text[at + 1..];
    // The command ends at the backquote that closes it: the first one outside single quotes.
    let mut quoted = false;
    for (i, c) in rest.char_indices() {
        match c {
            '\'' => quoted = !quoted,
            '`' if !quoted => return rest[..i].to_string(),
            _ => {}
        }
    }
    panic!("unterminated command in {text}")
}

/// Runs `cmd` in a POSIX shell with `curl` replaced by a function that prints its arguments,
/// in an empty directory; returns the arguments of each call. A command substitution that
/// escaped its quotes would leave a file behind.
fn curl_calls(cmd: &str) -> Vec<Vec<String>> {
    let dir = std::env::temp_dir().join(format!(
        "capdiag-hostile-sh-{}-{}",
        std::process::id(),
        cmd.len()
    ));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("tmp dir");
    let syntax = Command::new("sh")
        .args(["-n", "-c", cmd])
        .output()
        .expect("sh -n");
    assert!(syntax.status.success(), "sh -n refuses {cmd:?}: {syntax:?}");
    let script = format!(
        "curl() {{ printf 'CALL\\n'; for a; do printf '%s\\0' \"$a\"; done; printf '\\n'; }}\n{cmd}\n"
    );
    let o = Command::new("sh")
        .args(["-c", &script])
        .current_dir(&dir)
        .output()
        .expect("sh");
    assert!(o.status.success(), "{o:?}");
    let left: Vec<_> = std::fs::read_dir(&dir)
        .map(|d| d.filter_map(Result::ok).map(|e| e.file_name()).collect())
        .unwrap_or_default();
    assert!(left.is_empty(), "the command ran something: {left:?}");
    let _ = std::fs::remove_dir_all(&dir);
    let out = String::from_utf8_lossy(&o.stdout).into_owned();
    out.split("CALL\n")
        .skip(1)
        .map(|call| {
            call.trim_end_matches('\n')
                .split('\0')
                .filter(|a| !a.is_empty())
                .map(str::to_string)
                .collect()
        })
        .collect()
}

#[test]
fn a_realm_is_shown_escaped_and_its_curl_command_is_one_word() {
    let cap = auth_realm_unreachable();
    let texts = people_outputs(&cap);
    let analyze = &texts[0];
    assert!(analyze.contains("[auth-realm-unreachable]"), "{analyze}");
    let flat = analyze.split_whitespace().collect::<Vec<_>>().join(" ");
    assert!(flat.contains(&format!("token-{EVIL8_SHOWN}")), "{flat}");
    assert!(
        texts[3].contains("[auth-realm-unreachable]"),
        "{}",
        texts[3]
    );
    let f = findings(&cap);
    assert_eq!(f.len(), 1, "{f:?}");
    let detail = f[0]["detail"].as_str().unwrap_or_default();
    assert!(detail.contains(&hostile_realm()), "{detail}");
    // The suggested command: one curl call, the realm one argument, nothing else run.
    let cmd = suggested(f[0]["remediation"].as_str().unwrap_or_default(), "curl ");
    let calls = curl_calls(&cmd);
    assert_eq!(
        calls,
        vec![vec!["-v".to_string(), hostile_realm()]],
        "{cmd}"
    );
}

#[test]
fn a_location_in_a_suggested_curl_command_is_one_word() {
    let cap = presigned_403("HEAD");
    people_outputs(&cap);
    let f = findings(&cap);
    assert_eq!(f.len(), 1, "{f:?}");
    let detail = f[0]["detail"].as_str().unwrap_or_default();
    let cmd = suggested(detail, "curl ");
    let calls = curl_calls(&cmd);
    assert_eq!(calls.len(), 1, "{cmd}");
    assert_eq!(calls[0].len(), 2, "{cmd}");
    assert_eq!(calls[0][0], "-s");
    assert!(
        calls[0][1].starts_with(&format!(
            "http://10.0.0.40:9000/bucket/blob-{EVIL8}-'$(touch${{IFS}}PWNED)'?X-Amz-"
        )),
        "{:?}",
        calls[0][1]
    );
}

#[test]
fn file_names_rule_ids_and_values_in_messages_are_escaped() {
    // A capture whose name carries the sequences: the summary, the extract suggestion and
    // every message show it escaped; the extract suggestion quotes it for the shell.
    let cap = auth_realm_unreachable();
    let named = cap.with_file_name(format!("cap{EVIL}'$(touch${{IFS}}PWNED)'.pcap"));
    std::fs::copy(&cap, &named).expect("copy");
    let n = named.to_str().unwrap_or_default();
    let o = run(&["analyze", n]);
    assert_both_safe("analyze on a hostile file name", &o);
    let text = String::from_utf8_lossy(&o.stdout);
    assert!(text.contains(&format!("cap{EVIL_SHOWN}")), "{text}");
    let cmd_line = text
        .lines()
        .find(|l| l.contains("Extract evidence:"))
        .unwrap_or_default();
    assert!(
        cmd_line.contains("'\\''$(touch${IFS}PWNED)'\\''"),
        "{cmd_line}"
    );
    // The exact name in JSON.
    let f = findings(&named);
    assert_eq!(f[0]["file"].as_str(), Some(n));

    let missing = format!("{n}.missing");
    for args in [
        vec!["analyze", missing.as_str()],
        vec!["http", missing.as_str()],
        vec!["watch", "-r", missing.as_str()],
        vec![
            "extract",
            missing.as_str(),
            "-w",
            "/dev/null",
            "--frames",
            "1",
        ],
        vec!["explain", EVIL],
        vec!["analyze", "--rules", EVIL, n],
        vec!["analyze", "--format", EVIL, n],
        vec!["watch", "-i", EVIL],
        vec!["watch", "-i", "lo", "-f", EVIL],
    ] {
        let o = run(&args);
        assert_both_safe(&args.join(" "), &o);
        assert_eq!(o.status.code(), Some(2), "{args:?}: {o:?}");
        let err = String::from_utf8_lossy(&o.stderr);
        // What was given is named, escaped (clap drops ESC and BEL from its own quotes).
        assert!(err.contains("\\u{202e}gpj.exe"), "{args:?}: {err}");
    }
    // Writing to a hostile name that cannot be created.
    let bad_out = format!("/nonexistent-{EVIL}/x.pcap");
    let o = run(&["extract", n, "-w", &bad_out, "--frames", "1"]);
    assert_both_safe("extract -w", &o);
    assert!(String::from_utf8_lossy(&o.stderr).contains(EVIL_SHOWN));
}

#[test]
fn explain_prints_its_page_safely() {
    for id in [
        "s3-error-not-xml",
        "presigned-url-403",
        "auth-realm-unreachable",
    ] {
        let o = run(&["explain", id]);
        assert!(o.status.success());
        assert_both_safe(id, &o);
    }
}

// ---- What may reach a web page ----

mod common;

/// Markup a capture can carry where a client or a server puts text: a script, an element with
/// an event handler, a quote and an ampersand that end an attribute or start an entity.
const MARKUP: &str = "<script>alert(1)</script><img src=x onerror=alert(2)>\"'&amp;";
/// The same as the page must show it: text, every `<`, `>`, `"` and `&` escaped.
const MARKUP_SHOWN: &str =
    "&lt;script&gt;alert(1)&lt;/script&gt;&lt;img src=x onerror=alert(2)&gt;&quot;'&amp;amp;";

/// A registry GET whose URI and `User-Agent` carry markup (no spaces: a request target has
/// none), answered 307 to a presigned S3 URL whose path does too; the follow-up refused 403
/// with an S3 XML error whose `<Code>` is an escaped script (`&lt;script&gt;`, which the XML
/// reader turns back into markup), then an S3-signed request answered by a gateway's HTML page
/// whose `<title>` holds a script, and whose `Server` carries markup.
fn markup_captures() -> Vec<PathBuf> {
    let tight = MARKUP.replace(' ', "/");
    let mut p = Pcap::new();
    let path = format!(
        "/bucket/blob-{tight}?X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential=AK%2F20261204%2Fus-east-1%2Fs3%2Faws4_request&X-Amz-Date=20261204T115900Z&X-Amz-Expires=1200&X-Amz-SignedHeaders=host&X-Amz-Signature=abcd"
    );
    let req = format!(
        "GET /v2/{tight}/blobs/sha256:abc HTTP/1.1\r\nHost: 10.0.0.20:5000\r\nUser-Agent: {MARKUP}\r\n\r\n"
    );
    let resp = response(
        &format!(
            "HTTP/1.1 307 Temporary Redirect\r\nLocation: http://10.0.0.40:9000{path}\r\nDocker-Distribution-Api-Version: registry/2.0\r\n"
        ),
        b"",
    );
    p.exchange((CLIENT, 44000), (REGISTRY, 5000), req.as_bytes(), &resp);
    let req = format!("GET {path} HTTP/1.1\r\nHost: proxy.example:9000\r\n\r\n");
    let xml = "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Error><Code>&lt;script&gt;alert(6)&lt;/script&gt;</Code><Message>&lt;img src=x onerror=alert(7)&gt;</Message><RequestId>1</RequestId></Error>";
    let resp = response(
        "HTTP/1.1 403 Forbidden\r\nContent-Type: application/xml\r\n",
        xml.as_bytes(),
    );
    p.exchange((CLIENT, 44001), (S3, 9000), req.as_bytes(), &resp);
    let presigned = p.write("markup-presigned.pcap");
    let mut p = Pcap::new();
    let req = format!(
        "GET /bucket/{tight} HTTP/1.1\r\nHost: 10.0.0.30:9000\r\nAuthorization: AWS4-HMAC-SHA256 Credential=AK/20261204/us-east-1/s3/aws4_request, SignedHeaders=host, Signature=00\r\n\r\n"
    );
    let body = format!(
        "<html><head><title>502 <script>alert(5)</script>{MARKUP}</title></head><body>bad gateway</body></html>"
    );
    let resp = response(
        &format!("HTTP/1.1 502 Bad Gateway\r\nServer: {MARKUP}\r\nContent-Type: text/html\r\n"),
        body.as_bytes(),
    );
    p.exchange((REGISTRY, 41000), (GATEWAY, 9000), req.as_bytes(), &resp);
    vec![presigned, p.write("markup-s3-html.pcap")]
}

fn html_report(caps: &[PathBuf]) -> String {
    let mut args = vec!["analyze", "--format", "html"];
    args.extend(caps.iter().filter_map(|c| c.to_str()));
    let o = run(&args);
    assert_terminal_safe("analyze --format html (stderr)", &o.stderr);
    String::from_utf8(o.stdout).expect("UTF-8 page")
}

#[test]
fn markup_from_a_capture_is_text_in_the_html_report() {
    let caps = markup_captures();
    let page = html_report(&caps);
    // The findings are there, with the capture's text in them...
    for rule in ["presigned-url-403", "s3-error-not-xml"] {
        assert!(
            page.contains(&format!("data-rule=\"{rule}\"")),
            "{rule}: {page}"
        );
    }
    assert!(
        page.contains("&lt;script&gt;alert(1)&lt;/script&gt;"),
        "{page}"
    );
    assert!(
        page.contains("&lt;script&gt;alert(6)&lt;/script&gt;"),
        "{page}"
    );
    assert!(page.contains("502 &lt;script&gt;alert(5)"), "{page}");
    assert!(page.contains(MARKUP_SHOWN), "{page}");
    // ...and nothing of it is markup: every tag and attribute is the report's own, and the
    // page allows nothing to run or load.
    common::html::assert_only_known_tags("markup report", &page);
    for raw in ["<script", "<img", "onerror=alert(2)>", "\"'&amp;"] {
        assert!(!page.contains(raw), "{raw} in the page");
    }
    assert!(page.contains(
        "<meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; style-src 'unsafe-inline'\">"
    ));
}

#[test]
fn markup_in_a_file_name_is_text_in_the_html_report() {
    let caps = markup_captures();
    let named = caps[0].with_file_name("x\"><svg onload=alert(8)>'.pcap");
    std::fs::copy(&caps[0], &named).expect("copy capture");
    let page = html_report(&[named]);
    assert!(page.contains("data-rule=\"presigned-url-403\""), "{page}");
    assert!(
        page.contains("x&quot;&gt;&lt;svg onload=alert(8)&gt;'.pcap"),
        "{page}"
    );
    common::html::assert_only_known_tags("file name report", &page);
}

#[test]
#[ignore = "needs chromium (apt-get install -y chromium)"]
fn markup_from_a_capture_runs_nothing_in_a_browser() {
    let page = html_report(&markup_captures());
    let path = common::browser::artefacts().join("hostile-markup.html");
    std::fs::write(&path, page).expect("write page");
    let png = common::browser::artefacts().join("hostile-markup.png");
    let o = common::browser::open(
        &path,
        &[
            "--window-size=1200,1600".to_string(),
            format!("--screenshot={}", png.display()),
        ],
    );
    // A script or an image in the page would be blocked by its policy, and say so.
    assert!(o.problems.is_empty(), "{:?}", o.problems);
    assert!(png.exists());
}
