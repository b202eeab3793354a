//! A whole capture file through the reader, the engine and every rule, as `capdiag analyze`
//! does it (`capdiag::commands::run_rules`), with the secrets of the file's pcapng Decryption
//! Secrets Blocks taken as `analyze` takes them (so a damaged capture with secrets is decrypted
//! too). Must never panic.
#![no_main]

use capdiag::capture::file::CaptureReader;
use capdiag::engine::Engine;
use capdiag::rules::{RuleSet, instantiate};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(mut reader) =
        CaptureReader::with_buffer_len(std::io::Cursor::new(data.to_vec()), 64 * 1024)
    else {
        return;
    };
    let rules = instantiate(&[]).expect("all rules");
    // Connection records and stalls on, so that their bookkeeping runs on every segment too.
    let mut limits = capdiag::engine::Limits::default();
    limits.flow.records = true;
    limits.flow.stalls = true;
    let mut engine = Engine::new(limits);
    let keys = std::sync::Arc::new(capdiag::tls::KeyStore::default());
    let k = std::sync::Arc::clone(&keys);
    reader.on_secrets(move |kind, data, frame| k.add_embedded_at("fuzz", kind, data, frame));
    engine.set_tls_keys(keys);
    let mut findings = 0usize;
    let mut on_finding = |f: capdiag::finding::Finding| {
        findings += 1;
        assert!(
            f.frames.windows(2).all(|w| w[0] <= w[1]),
            "finding frames not ascending"
        );
    };
    let mut set = RuleSet::new(rules, &mut on_finding);
    let end = reader.for_each_frame(|f| {
        engine.frame(f, &mut set);
    });
    engine.finish(&mut set);
    let _ = set.state_dropped();
    let _ = (
        end.to_string(),
        reader.format().to_string(),
        reader.link_types().len(),
    );
    let _ = engine.stats().skipped();
});
