//! Decryption when the secrets come late: a followed key log (`watch`) that a client writes
//! after the capture has already shown the connection's ServerHello. The records that come
//! before the secrets are held and decrypted once they are known, at their own frames; when
//! they have not come by the connection's end, the connection has no key.

use capdiag::capture::file::CaptureReader;
use capdiag::engine::{Engine, Event, Limits, Sink};
use capdiag::tls::KeyStore;
use std::path::Path;
use std::sync::Arc;

#[derive(Default)]
struct Frames(Vec<(u64, u64)>);

impl Sink for Frames {
    fn event(&mut self, ev: Event<'_>) {
        if let Event::Exchange(ex) = ev {
            let f = |m: Option<&capdiag::http::Message>| m.map_or(0, |m| m.frame);
            self.0
                .push((f(ex.request.as_deref()), f(ex.response.as_deref())));
        }
    }
}

/// The exchanges (request and response frames) of a sample, its secrets given when frame
/// `keys_at` has been read (0: before any).
fn exchanges(sample: &str, keys_at: u64) -> (Vec<(u64, u64)>, u64) {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let cap = root.join(sample);
    let key_log = std::fs::read(cap.with_extension("keys")).expect("key log");
    let store = Arc::new(KeyStore::open(&[], true).expect("a followed store"));
    let mut engine = Engine::new(Limits::default());
    engine.set_tls_keys(Arc::clone(&store));
    let mut reader =
        CaptureReader::new(std::fs::File::open(&cap).expect("sample")).expect("capture");
    let mut sink = Frames::default();
    let mut given = false;
    let add = |given: &mut bool| {
        if !*given {
            store.add_embedded("test", capdiag::tls::keys::TLS_KEY_LOG, &key_log);
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
    (sink.0, engine.stats().tls.decrypted)
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
        assert!(early.len() >= 2, "{sample}: {early:?}");
        // The secrets come after the first response: every record up to there waited.
        let after_first = early[0].1;
        let (late, n) = exchanges(sample, after_first);
        assert_eq!(n, 1, "{sample}");
        assert_eq!(late, early, "{sample}");
        // They never come while the connection lasts: what was held is let go at its end,
        // and the connection counted as without a key.
        let (never, n) = exchanges(sample, u64::MAX);
        assert!(never.is_empty() && n == 0, "{sample}: {never:?}");
    }
}
