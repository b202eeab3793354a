//! The HTML report (`analyze --format html`) and the ladder diagrams: every sample's report
//! holds each of its findings (rule, key frame) with every evidence frame in the finding's
//! diagram and table; the evidence's ends and times are tshark's; the report is bounded; and
//! (with chromium) every sample's report opens in a real browser without a console message,
//! paints a page of the expected size, follows a dark colour scheme and prints on A4.

mod common;

use common::browser::{self, Shot};
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// Every capture under `samples/`.
fn samples() -> Vec<PathBuf> {
    fn walk(d: &Path, out: &mut Vec<PathBuf>) {
        let mut entries: Vec<PathBuf> = std::fs::read_dir(d)
            .expect("samples dir")
            .filter_map(|e| Some(e.ok()?.path()))
            .collect();
        entries.sort();
        for p in entries {
            if p.is_dir() {
                walk(&p, out);
            } else if p.extension().is_some_and(|e| e == "pcap" || e == "pcapng") {
                out.push(p);
            }
        }
    }
    let mut v = Vec::new();
    walk(&root().join("samples"), &mut v);
    assert!(v.len() > 50, "samples found: {}", v.len());
    v
}

/// `capdiag ARGS… SAMPLE`, with the sample's key log when it has one.
fn capdiag(args: &[&str], sample: &Path) -> Output {
    let keys = sample.with_extension("keys");
    let mut c = Command::new(env!("CARGO_BIN_EXE_capdiag"));
    c.args(args);
    if keys.exists() {
        c.arg("--tls-keylog").arg(&keys);
    }
    c.arg(sample).output().expect("run capdiag")
}

fn findings(sample: &Path) -> Vec<Value> {
    let o = capdiag(&["analyze", "--format", "json"], sample);
    let v: Value =
        serde_json::from_slice(&o.stdout).unwrap_or_else(|e| panic!("{}: {e}", sample.display()));
    v["findings"].as_array().cloned().unwrap_or_default()
}

fn html(sample: &Path) -> String {
    let o = capdiag(&["analyze", "--format", "html"], sample);
    assert!(
        o.status.code().is_some_and(|c| c <= 1),
        "{}: {}",
        sample.display(),
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8(o.stdout).expect("UTF-8 page")
}

/// The `<article>` of the finding with this rule and key frame.
fn article<'a>(page: &'a str, rule: &str, key: u64) -> Option<&'a str> {
    let mut rest = page;
    while let Some(at) = rest.find("<article ") {
        let a = rest.get(at..)?;
        let end = a.find("</article>")?;
        let this = a.get(..end)?;
        let open = this.get(..this.find('>')?)?;
        if open.contains(&format!("data-rule=\"{rule}\""))
            && open.contains(&format!("data-key-frame=\"{key}\""))
        {
            return Some(this);
        }
        rest = a.get(end..)?;
    }
    None
}

#[test]
fn every_samples_report_holds_its_findings_and_draws_their_evidence() {
    let mut checked = 0;
    for s in samples() {
        let fs = findings(&s);
        let page = html(&s);
        let name = s.display().to_string();
        assert!(page.starts_with("<!DOCTYPE html>"), "{name}");
        assert_eq!(
            page.matches("<article class=\"finding").count(),
            fs.len(),
            "{name}: one article per finding"
        );
        for f in &fs {
            let rule = f["rule"].as_str().unwrap_or_default();
            let key = f["key_frame"].as_u64().unwrap_or_default();
            let a = article(&page, rule, key)
                .unwrap_or_else(|| panic!("{name}: no article for {rule} at {key}"));
            let ladder = a
                .find("<svg class=\"ladder\"")
                .and_then(|i| Some(a.get(i..)?.split("</svg>").next()?.to_string()))
                .unwrap_or_else(|| panic!("{name}: {rule} has no ladder diagram"));
            // A party plays one part in a finding.
            let mut roles = std::collections::BTreeMap::new();
            for e in f["evidence"].as_array().into_iter().flatten() {
                for end in ["from", "to"] {
                    if let (Some(a), Some(r)) = (e[end]["addr"].as_str(), e[end]["role"].as_str())
                        && r != "client"
                    {
                        let was = roles.insert(a.to_string(), r.to_string());
                        assert!(
                            was.as_deref().is_none_or(|w| w == r),
                            "{name}: {rule}: {a} is both {was:?} and {r}"
                        );
                    }
                }
            }
            for e in f["evidence"].as_array().into_iter().flatten() {
                let frame = e["frame"].as_u64().unwrap_or_default();
                assert!(
                    a.contains(&format!("<tr data-frame=\"{frame}\""))
                        || a.contains(&format!("<tr class=\"key\" data-frame=\"{frame}\"")),
                    "{name}: {rule}: evidence frame {frame} not in the table"
                );
                assert!(
                    ladder.contains(&format!("data-frame=\"{frame}\"")),
                    "{name}: {rule}: evidence frame {frame} not in the diagram"
                );
            }
            assert!(
                ladder.contains(&format!("<g class=\"row key\" data-frame=\"{key}\"")),
                "{name}: {rule}: the key frame {key} is not marked in the diagram"
            );
            checked += 1;
        }
    }
    assert!(checked >= 40, "findings checked: {checked}");
}

#[test]
fn every_samples_report_holds_only_its_own_markup() {
    for s in samples() {
        let page = html(&s);
        let name = s.display().to_string();
        common::html::assert_only_known_tags(&name, &page);
        assert!(page.contains("http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; style-src 'unsafe-inline'\""), "{name}");
        assert!(!page.contains("url("), "{name}: a resource to load");
    }
}

/// A report of 10,000 findings of 100 evidence frames each.
fn ten_thousand_findings() -> String {
    use capdiag::finding::{Evidence, FindingDraft, Party, Severity};
    let mut r = capdiag::output::html::Report::default();
    let c: std::net::SocketAddr = "10.0.0.1:40000".parse().expect("addr");
    let s: std::net::SocketAddr = "10.0.0.2:5000".parse().expect("addr");
    for n in 1..=10_000u64 {
        let ev: Vec<Evidence> = (0..100)
            .map(|i| {
                Evidence::packet(
                    n * 1000 + i,
                    Some(n),
                    (Party::client(c), Party::server(s)),
                    1_796_385_600_000_000_000 + i as i64 * 1_000_000,
                    "SYN",
                    "SYN",
                )
            })
            .collect();
        let f = FindingDraft {
            rule: "tcp-connect-unanswered",
            severity: Severity::Warning,
            key_frame: n * 1000,
            evidence: ev,
            title: format!("finding {n}"),
            detail: "d".into(),
            remediation: "r".into(),
            time: 1_796_385_600.0 + n as f64,
            identifier: None,
        }
        .build();
        r.finding(f, n as usize);
    }
    let summary = capdiag::output::FileSummary::of_stats(
        "many.pcap".into(),
        "pcap".into(),
        vec!["EN10MB (1)".into()],
        &capdiag::engine::Stats::default(),
        "complete".into(),
    );
    r.file_done(summary, 10_000, 0, 0);
    r.render()
}

#[test]
fn a_report_of_ten_thousand_findings_is_bounded_and_says_what_it_left_out() {
    let page = ten_thousand_findings();
    let max = capdiag::output::html::MAX_DETAILED;
    assert_eq!(page.matches("<article class=\"finding").count(), max);
    assert_eq!(
        page.matches("<tr data-rule=\"tcp-connect-unanswered\" data-key-frame")
            .count(),
        capdiag::output::html::MAX_LISTED
    );
    assert!(page.contains(&format!(
        "and {} more are not listed at all",
        10_000 - max - capdiag::output::html::MAX_LISTED
    )));
    // Diagrams of 100 evidence frames draw 40 rows and say how many they left out.
    assert!(page.contains("60 more evidence frames not drawn"));
    // The timeline marks the findings shown in full and counts the others.
    assert_eq!(page.matches("<g class=\"mark sev-warning\"").count(), max);
    assert!(page.contains(&format!("{} findings not marked", 10_000 - max)));
    common::html::assert_only_known_tags("ten thousand findings", &page);
    assert!(
        page.len() < 20 * 1024 * 1024,
        "page of {} bytes",
        page.len()
    );
}

/// The frames' times and ends as tshark reads them: frame → (epoch time, source IP, source
/// port, destination IP, destination port, ICMP).
fn tshark_frames(sample: &Path, frames: &[u64]) -> std::collections::BTreeMap<u64, Vec<String>> {
    let list: Vec<String> = frames.iter().map(u64::to_string).collect();
    let keys = sample.with_extension("keys");
    let mut c = Command::new("tshark");
    c.arg("-n").arg("-r").arg(sample);
    if keys.exists() {
        c.arg("-o")
            .arg(format!("tls.keylog_file:{}", keys.display()));
    }
    let o = c
        .args(["-Y", &format!("frame.number in {{{}}}", list.join(", "))])
        .args(["-T", "fields", "-E", "separator=/t"])
        .args([
            "-e",
            "frame.number",
            "-e",
            "frame.time_epoch",
            "-e",
            "ip.src",
            "-e",
            "ipv6.src",
        ])
        .args([
            "-e",
            "tcp.srcport",
            "-e",
            "ip.dst",
            "-e",
            "ipv6.dst",
            "-e",
            "tcp.dstport",
            "-e",
            "icmp.type",
            "-e",
            "icmpv6.type",
        ])
        .output()
        .expect("tshark is needed (apt-get install -y tshark)");
    String::from_utf8_lossy(&o.stdout)
        .lines()
        .filter_map(|l| {
            let p: Vec<String> = l
                .split('\t')
                .map(|x| x.split(',').next().unwrap_or("").to_string())
                .collect();
            Some((p.first()?.parse().ok()?, p))
        })
        .collect()
}

#[test]
#[ignore = "needs tshark (apt-get install -y tshark)"]
fn evidence_ends_and_times_are_tsharks() {
    let mut checked = 0;
    for s in samples() {
        let fs = findings(&s);
        let evs: Vec<&Value> = fs
            .iter()
            .flat_map(|f| f["evidence"].as_array().into_iter().flatten())
            .filter(|e| e.get("from").is_some())
            .collect();
        if evs.is_empty() {
            continue;
        }
        let frames: Vec<u64> = evs.iter().filter_map(|e| e["frame"].as_u64()).collect();
        let t = tshark_frames(&s, &frames);
        let name = s.display().to_string();
        for e in evs {
            let frame = e["frame"].as_u64().unwrap_or_default();
            let p = t
                .get(&frame)
                .unwrap_or_else(|| panic!("{name}: tshark has no frame {frame}"));
            let g = |i: usize| p.get(i).cloned().unwrap_or_default();
            let (src, dst) = (format!("{}{}", g(2), g(3)), format!("{}{}", g(5), g(6)));
            let icmp = !g(8).is_empty() || !g(9).is_empty();
            let ends = |a: &str, ip: &str, port: String| {
                let bare = a
                    .rsplit_once(':')
                    .map(|(h, _)| h.trim_matches(['[', ']']))
                    .unwrap_or(a);
                if icmp || port.is_empty() {
                    bare == ip || a == ip
                } else {
                    bare == ip && a.ends_with(&format!(":{port}"))
                }
            };
            let from = e["from"]["addr"].as_str().unwrap_or_default();
            let to = e["to"]["addr"].as_str().unwrap_or_default();
            assert!(
                ends(from, &src, g(4)),
                "{name}: frame {frame} from {from}, tshark {src}:{}",
                g(4)
            );
            assert!(
                ends(to, &dst, g(7)),
                "{name}: frame {frame} to {to}, tshark {dst}:{}",
                g(7)
            );
            if let Some(time) = e["time"].as_f64() {
                let theirs: f64 = g(1).parse().unwrap_or_default();
                assert!(
                    (time - theirs).abs() < 2e-6,
                    "{name}: frame {frame} at {time}, tshark {theirs}"
                );
            }
            checked += 1;
        }
    }
    assert!(checked >= 150, "evidence packets checked: {checked}");
}

const WIDTH: u32 = 1200;
const HEIGHT: u32 = 1600;

#[test]
#[ignore = "needs chromium (apt-get install -y chromium)"]
fn every_report_opens_in_a_browser_and_paints_a_page() {
    browser::chromium();
    let dir = browser::artefacts();
    let pages: Vec<(String, PathBuf)> = samples()
        .iter()
        .map(|s| {
            let name = s
                .strip_prefix(root().join("samples"))
                .unwrap_or(s)
                .display()
                .to_string()
                .replace('/', "__");
            let p = dir.join(format!("{name}.html"));
            std::fs::write(&p, html(s)).expect("write page");
            (name, p)
        })
        .chain(std::iter::once({
            let p = dir.join("ten-thousand-findings.html");
            std::fs::write(&p, ten_thousand_findings()).expect("write page");
            ("ten-thousand-findings".to_string(), p)
        }))
        .collect();
    // Two browsers at a time (two cores).
    let failures = std::sync::Mutex::new(Vec::new());
    std::thread::scope(|scope| {
        for half in pages.chunks(pages.len().div_ceil(2).max(1)) {
            let failures = &failures;
            let dir = &dir;
            scope.spawn(move || {
                for (name, page) in half {
                    let png = dir.join(format!("{name}.png"));
                    let _ = std::fs::remove_file(&png);
                    let o = browser::open(
                        page,
                        &[
                            format!("--window-size={WIDTH},{HEIGHT}"),
                            format!("--screenshot={}", png.display()),
                        ],
                    );
                    let mut bad = o.problems.clone();
                    if png.exists() {
                        let shot = Shot::read(&png);
                        if (shot.width, shot.height) != (WIDTH, HEIGHT) {
                            bad.push(format!("screenshot {}x{}", shot.width, shot.height));
                        }
                        // Text, tables and drawings: many colours, a good part of the page
                        // painted.
                        if shot.colours() < 30 || shot.not_background() < 20_000 {
                            bad.push(format!(
                                "blank: {} colours, {} pixels painted",
                                shot.colours(),
                                shot.not_background()
                            ));
                        }
                    } else {
                        bad.push("no screenshot".into());
                    }
                    if !bad.is_empty() {
                        failures
                            .lock()
                            .expect("lock")
                            .push(format!("{name}: {bad:?}"));
                    }
                }
            });
        }
    });
    let failures = failures.into_inner().expect("lock");
    assert!(failures.is_empty(), "{failures:#?}");
    assert!(pages.len() > 50, "pages opened: {}", pages.len());
}

#[test]
#[ignore = "needs chromium (apt-get install -y chromium)"]
fn a_report_follows_a_dark_colour_scheme_and_prints_on_a4() {
    browser::chromium();
    let dir = browser::artefacts();
    let page = dir.join("dark-and-print.html");
    std::fs::write(
        &page,
        html(&root().join("samples/registry/presigned-403.pcap")),
    )
    .expect("write page");
    let mut lumas = Vec::new();
    for (scheme, name) in [("1", "light"), ("0", "dark")] {
        let png = dir.join(format!("presigned-403-{name}.png"));
        let o = browser::open(
            &page,
            &[
                format!("--window-size={WIDTH},{HEIGHT}"),
                format!("--screenshot={}", png.display()),
                format!("--blink-settings=preferredColorScheme={scheme}"),
            ],
        );
        assert!(o.problems.is_empty(), "{name}: {:?}", o.problems);
        lumas.push(browser::luma(Shot::read(&png).at(5, 5)));
    }
    assert!(
        lumas[0] > 200 && lumas[1] < 60,
        "background luma light/dark: {lumas:?}"
    );
    let pdf = dir.join("presigned-403.pdf");
    let _ = std::fs::remove_file(&pdf);
    let o = browser::open(
        &page,
        &[
            "--no-pdf-header-footer".to_string(),
            format!("--print-to-pdf={}", pdf.display()),
        ],
    );
    assert!(o.problems.is_empty(), "{:?}", o.problems);
    let bytes = std::fs::read(&pdf).expect("a PDF");
    assert!(bytes.starts_with(b"%PDF"));
    let text = String::from_utf8_lossy(&bytes);
    // Every page A4: 595 x 842 points (210 x 297 mm).
    let boxes: Vec<Vec<f64>> = text
        .split("/MediaBox [")
        .skip(1)
        .filter_map(|b| {
            let nums: Vec<f64> = b
                .split(']')
                .next()?
                .split_whitespace()
                .filter_map(|n| n.parse().ok())
                .collect();
            Some(nums)
        })
        .collect();
    assert!(!boxes.is_empty(), "no page");
    for b in &boxes {
        let (w, h) = (
            b.get(2).copied().unwrap_or(0.0),
            b.get(3).copied().unwrap_or(0.0),
        );
        assert!(
            (w - 595.0).abs() < 1.0 && (h - 842.0).abs() < 1.0,
            "page of {w} x {h} points, not A4"
        );
    }
}

/// The ladder lines of `analyze`'s text: from each diagram's head to its legend.
fn ladder_lines(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut inside = false;
    for l in text.lines() {
        if l.trim_start().starts_with("frame ") && !l.contains('│') && !l.contains('|') {
            inside = true;
        }
        if inside {
            out.push(l.to_string());
        }
        if l.contains("key frame · time since") || l.contains("key frame - time since") {
            inside = false;
        }
    }
    out
}

fn text_of(sample: &Path, env: &[(&str, &str)], args: &[&str]) -> String {
    let keys = sample.with_extension("keys");
    let mut c = Command::new(env!("CARGO_BIN_EXE_capdiag"));
    c.arg("analyze").args(args).env_remove("COLUMNS");
    for v in ["LC_ALL", "LC_CTYPE", "LANG"] {
        c.env_remove(v);
    }
    c.envs(env.iter().copied());
    if keys.exists() {
        c.arg("--tls-keylog").arg(&keys);
    }
    let o = c.arg(sample).output().expect("run capdiag");
    String::from_utf8(o.stdout).expect("UTF-8")
}

#[test]
fn the_terminal_ladder_fits_80_columns_and_falls_back_to_ascii() {
    let mut diagrams = 0;
    for s in samples() {
        let n = findings(&s).len();
        if n == 0 {
            continue;
        }
        let name = s.display().to_string();
        let utf8 = text_of(&s, &[("LANG", "C.UTF-8")], &[]);
        let lines = ladder_lines(&utf8);
        assert!(!lines.is_empty(), "{name}: no diagram");
        diagrams += utf8.matches("key frame · time since").count();
        for l in &lines {
            assert!(
                l.chars().count() <= 80,
                "{name}: {} columns: {l}",
                l.chars().count()
            );
        }
        assert!(
            lines.iter().any(|l| l.contains('▶') || l.contains('◀')),
            "{name}"
        );
        // Not UTF-8 (no locale set, or C): ASCII only.
        for env in [
            &[][..],
            &[("LC_ALL", "C")][..],
            &[("LANG", "C.UTF-8"), ("LC_ALL", "POSIX")][..],
        ] {
            let ascii = text_of(&s, env, &[]);
            let lines = ladder_lines(&ascii);
            assert!(!lines.is_empty(), "{name} {env:?}: no diagram");
            for l in &lines {
                assert!(l.is_ascii(), "{name} {env:?}: {l}");
                assert!(l.chars().count() <= 80, "{name}: {l}");
            }
        }
        let forced = text_of(&s, &[("LANG", "C.UTF-8")], &["--ascii"]);
        let forced_lines = ladder_lines(&forced);
        assert!(
            !forced_lines.is_empty() && forced_lines.iter().all(|l| l.is_ascii()),
            "{name}: --ascii"
        );
        assert!(
            !forced.contains('│'),
            "{name}: --ascii draws the table in ASCII too"
        );
        let none = text_of(&s, &[("LANG", "C.UTF-8")], &["--no-diagram"]);
        assert!(ladder_lines(&none).is_empty(), "{name}: --no-diagram");
        assert_eq!(
            none.matches("Wireshark filter:").count(),
            n,
            "{name}: every finding still printed"
        );
    }
    assert!(diagrams >= 40, "diagrams: {diagrams}");
}
