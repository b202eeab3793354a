//! Inputs the fuzzers found (fuzz/README.md), kept as regression tests: each must go through
//! the same path as its fuzz target without panicking. Run in the default (debug) test profile,
//! overflow checks included.

use capdiag::capture::file::CaptureReader;
use capdiag::engine::Engine;
use capdiag::rules::{RuleSet, instantiate};
use std::path::Path;

fn inputs(target: &str) -> Vec<std::path::PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fuzz-regressions")
        .join(target);
    let mut v: Vec<_> = std::fs::read_dir(dir)
        .map(|d| d.flatten().map(|e| e.path()).collect())
        .unwrap_or_default();
    v.sort();
    v
}

#[test]
fn whole_file_inputs_analyse_without_panicking() {
    let files = inputs("whole_file");
    assert!(!files.is_empty(), "no regression inputs found");
    for p in files {
        let data = std::fs::read(&p).expect("read");
        let Ok(mut reader) = CaptureReader::new(std::io::Cursor::new(data)) else {
            continue;
        };
        let mut findings = 0;
        let mut on_finding = |_f: capdiag::finding::Finding| findings += 1;
        let mut engine = Engine::new(capdiag::engine::Limits::default());
        let mut set = RuleSet::new(instantiate(&[]).expect("rules"), &mut on_finding);
        reader.for_each_frame(|f| {
            engine.frame(f, &mut set);
        });
        engine.finish(&mut set);
        drop(set);
        eprintln!(
            "{}: {} frames, {findings} findings",
            p.display(),
            engine.stats().frames
        );
    }
}
