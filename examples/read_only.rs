//! Reads a capture frame by frame and does nothing else: the reader's own speed, for comparing
//! with `tcpdump -r FILE -w /dev/null` (libpcap).
//!
//!     cargo run --release --example read_only -- FILE

use capdiag::capture::file::CaptureReader;
use std::time::Instant;

fn main() {
    let Some(path) = std::env::args().nth(1) else {
        eprintln!("usage: read_only FILE");
        std::process::exit(2);
    };
    let file = match std::fs::File::open(&path) {
        Ok(f) => f,
        Err(e) => {
            eprintln!("read_only: {path}: {e}");
            std::process::exit(2);
        }
    };
    let start = Instant::now();
    let mut reader = match CaptureReader::new(file) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("read_only: {path}: {e}");
            std::process::exit(2);
        }
    };
    let mut bytes = 0u64;
    let end = reader.for_each_frame(|f| bytes += f.data.len() as u64);
    let secs = start.elapsed().as_secs_f64();
    println!(
        "{} frames, {} captured bytes, {:.2} s, {:.0} MB/s ({end})",
        reader.frames_read(),
        bytes,
        secs,
        reader.bytes_read() as f64 / secs / 1e6
    );
}
