//! Decryption when the secrets come late: a followed key log (`watch`) that a client writes
//! after the capture has already shown the connection's ServerHello. The records that come
//! before the secrets are held and decrypted once they are known, at their own frames; when
//! they have not come by the connection's end, the connection has no key.

use capdiag::capture::file::CaptureReader;
use capdiag::engine::{Engine, Event, Limits, Sink};
use capdiag::tls::KeyStore;
use std::path::Path;
use std::sync::Arc;

/// The exchanges (request and response frames) and the alerts (frame, description).
#[derive(Default)]
struct Frames(Vec<(u64, u64)>, Vec<(u64, Option<u8>)>);

impl Sink for Frames {
    fn event(&mut self, ev: Event<'_>) {
        match ev {
            Event::Exchange(ex) => {
                let f = |m: Option<&capdiag::http::Message>| m.map_or(0, |m| m.frame);
                self.0
                    .push((f(ex.request.as_deref()), f(ex.response.as_deref())));
            }
            Event::Tls(t) => self
                .1
                .extend(t.alerts.iter().map(|a| (a.frame, a.description))),
            _ => {}
        }
    }
}

/// The exchanges (request and response frames) of a sample, its secrets given when frame
/// `keys_at` has been read (0: before any).
fn exchanges(sample: &str, keys_at: u64) -> (Frames, u64) {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let cap = root.join(sample);
    let key_log = std::fs::read(cap.with_extension("keys")).expect("key log");
    // A key log the client has not written yet, followed as `watch` does.
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("tls-keys");
    std::fs::create_dir_all(&dir).expect("tmp");
    let file = dir.join(format!(
        "late-{}-{keys_at}.keys",
        cap.file_stem().and_then(|s| s.to_str()).unwrap_or("x")
    ));
    std::fs::write(&file, b"").expect("empty key log");
    let store = Arc::new(KeyStore::open(std::slice::from_ref(&file), true).expect("store"));
    let mut engine = Engine::new(Limits::default());
    engine.set_tls_keys(Arc::clone(&store));
    let mut reader =
        CaptureReader::new(std::fs::File::open(&cap).expect("sample")).expect("capture");
    let mut sink = Frames::default();
    let mut given = false;
    let add = |given: &mut bool| {
        if !*given {
            std::fs::write(&file, &key_log).expect("key log written");
            *given = true;
        }
    };
    reader.for_each_frame(|f| {
        if f.number > keys_at {
            add(&mut given);
        }
        engine.frame(f, &mut sink);
    });
    add(&mut given);
    engine.finish(&mut sink);
    (sink, engine.stats().tls.decrypted)
}

#[test]
fn records_before_the_secrets_are_held_and_decrypted_at_their_frames() {
    for sample in [
        "samples/tls-keys/healthy-tls13-aes128.pcap",
        "samples/tls-keys/healthy-tls12-chacha.pcap",
        "samples/tls-keys/key-update-tls13.pcap",
    ] {
        let (early, n) = exchanges(sample, 0);
        assert_eq!(n, 1, "{sample}");
        assert!(early.0.len() >= 2, "{sample}: {:?}", early.0);
        // Each ends with the client's close_notify, decrypted.
        assert!(
            early.1.iter().any(|a| a.1 == Some(0)),
            "{sample}: {:?}",
            early.1
        );
        // The secrets come after the first response: every record up to there waited (and,
        // the file being read again at most every 20 ms, perhaps to the connection's end);
        // the same exchanges and alerts.
        let after_first = early.0[0].1;
        let (late, n) = exchanges(sample, after_first);
        assert_eq!(n, 1, "{sample}");
        assert_eq!((&late.0, &late.1), (&early.0, &early.1), "{sample}");
        // They never come while the connection lasts: what was held is let go at its end,
        // and the connection counted as without a key.
        let (never, n) = exchanges(sample, u64::MAX);
        assert!(never.0.is_empty() && n == 0, "{sample}: {:?}", never.0);
    }
}

/// A copy of a sample with its key log as a Decryption Secrets Block placed after frame
/// `after` (as tools that capture and log at once write them), in `dir`.
fn with_block_after(sample: &str, after: u64, dir: &Path) -> std::path::PathBuf {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let cap = root.join(sample);
    let key_log = std::fs::read(cap.with_extension("keys")).expect("key log");
    let mut reader =
        CaptureReader::new(std::fs::File::open(&cap).expect("sample")).expect("capture");
    let out = dir.join(format!("dsb-after-{after}.pcapng"));
    let mut w =
        capdiag::capture::write::CaptureWriter::pcapng(std::fs::File::create(&out).expect("out"))
            .expect("writer");
    if after == 0 {
        w.write_secrets(capdiag::tls::keys::TLS_KEY_LOG, &key_log)
            .expect("dsb");
    }
    reader.for_each_frame(|f| {
        w.write(f).expect("frame");
        if f.number == after {
            w.write_secrets(capdiag::tls::keys::TLS_KEY_LOG, &key_log)
                .expect("dsb");
        }
    });
    w.finish().expect("finish");
    out
}

fn conns_json(args: &[&std::ffi::OsStr]) -> serde_json::Value {
    let o = std::process::Command::new(env!("CARGO_BIN_EXE_capdiag"))
        .arg("conns")
        .args(["--format", "json"])
        .args(args)
        .output()
        .expect("capdiag");
    serde_json::from_slice(&o.stdout).expect("json")
}

#[test]
fn secrets_in_a_pcapng_count_from_where_they_are_whatever_the_threads() {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("tls-keys");
    std::fs::create_dir_all(&dir).expect("tmp");
    // Before the connection: decrypted. After its ServerHello (frame 6): not (Wireshark too
    // reads a connection with the secrets known by its handshake); the same with 1 or 2
    // threads, though the reading thread meets the block ahead of the analysis.
    for (after, status) in [(0, "decrypted"), (3, "decrypted"), (8, "no_key")] {
        let p = with_block_after("samples/tls-keys/healthy-tls13-aes128.pcap", after, &dir);
        for j in ["1", "2"] {
            let v = conns_json(&["-j".as_ref(), j.as_ref(), p.as_os_str()]);
            let d = &v["connections"][0]["tls"]["decryption"];
            assert_eq!(d["status"], status, "block after {after}, -j {j}: {d}");
        }
    }
}

#[test]
fn a_key_log_without_the_application_secrets_says_so() {
    // Only the handshake lines of a TLS 1.3 key log: the handshake is read (its certificate),
    // the application data not, and the connection is counted as without a key, saying why.
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let cap = root.join("samples/tls-keys/healthy-tls13-aes128.pcap");
    let text = std::fs::read_to_string(cap.with_extension("keys")).expect("key log");
    let partial: String = text
        .lines()
        .filter(|l| l.contains("HANDSHAKE"))
        .map(|l| format!("{l}\n"))
        .collect();
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("tls-keys");
    std::fs::create_dir_all(&dir).expect("tmp");
    let keys = dir.join("handshake-only.keys");
    std::fs::write(&keys, partial).expect("write");
    let v = conns_json(&["--tls-keylog".as_ref(), keys.as_os_str(), cap.as_os_str()]);
    let t = &v["connections"][0]["tls"];
    assert_eq!(t["decryption"]["status"], "no_key", "{t}");
    assert!(
        t["decryption"]["stopped"]
            .as_str()
            .is_some_and(|s| s.contains("no application traffic secret")),
        "{t}"
    );
    assert!(
        t["certificates"].as_array().is_some_and(|c| !c.is_empty()),
        "{t}"
    );
    assert_eq!(v["files"][0]["exchanges"], 0);
}

#[test]
fn a_store_without_files_follows_nothing() {
    // `watch` without --tls-keylog: nothing is held for secrets that cannot come.
    let s = KeyStore::open(&[], true).expect("store");
    assert!(!s.has_any() && !s.follows());
}
