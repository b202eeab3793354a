//! Opening HTML reports in a real browser: Debian's `chromium`, headless. Chromium exits 0
//! even when a page fails, so what it wrote is what is checked: its console (every message of
//! a page, a Content-Security-Policy violation included, is logged as `INFO:CONSOLE`), a
//! failed load (`Page load failed`), and the files it was asked for.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::Command;

/// The browser binary: the real one behind Debian's `/usr/bin/chromium` wrapper (the wrapper
/// adds nothing a test needs, and noise on standard error).
pub fn chromium() -> PathBuf {
    for p in [
        "/usr/lib/chromium/chromium",
        "/usr/bin/chromium",
        "/usr/bin/chromium-browser",
    ] {
        if Path::new(p).exists() {
            return PathBuf::from(p);
        }
    }
    panic!("chromium is not installed (apt-get install -y chromium); this test needs it");
}

/// Where screenshots are kept for people to look at (not committed).
pub fn artefacts() -> PathBuf {
    let d = Path::new(env!("CARGO_TARGET_TMPDIR")).join("report-screenshots");
    std::fs::create_dir_all(&d).expect("artefact dir");
    d
}

/// What one browser run produced.
pub struct Opened {
    /// Console messages and load failures: empty for a page that loads cleanly.
    pub problems: Vec<String>,
}

/// Opens `html` headless with `args` (`--screenshot=…`, `--print-to-pdf=…`), a fresh profile
/// and home of its own, at most 60 s.
pub fn open(html: &Path, args: &[String]) -> Opened {
    let home = tempdir("home");
    let out = Command::new("timeout")
        .args(["-k", "5", "60"])
        .arg(chromium())
        .args([
            "--headless",
            "--no-sandbox",
            "--timeout=15000",
            "--hide-scrollbars",
            "--force-device-scale-factor=1",
            "--enable-logging=stderr",
            "--v=0",
        ])
        .arg(format!(
            "--user-data-dir={}",
            home.join("profile").display()
        ))
        .args(args)
        .arg(format!(
            "file://{}",
            html.canonicalize().expect("html path").display()
        ))
        .env("HOME", &home)
        .env("XDG_CONFIG_HOME", home.join(".config"))
        .env("XDG_CACHE_HOME", home.join(".cache"))
        .output()
        .expect("run chromium");
    let _ = std::fs::remove_dir_all(&home);
    let stderr = String::from_utf8_lossy(&out.stderr);
    let problems = stderr
        .lines()
        .filter(|l| l.contains(":CONSOLE") || l.contains("Page load failed"))
        .map(str::to_string)
        .collect();
    Opened { problems }
}

fn tempdir(what: &str) -> PathBuf {
    use std::sync::atomic::{AtomicU32, Ordering};
    static N: AtomicU32 = AtomicU32::new(0);
    let d = std::env::temp_dir().join(format!(
        "capdiag-browser-{}-{what}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    ));
    std::fs::create_dir_all(&d).expect("temp dir");
    d
}

/// A screenshot's size and pixels (RGB or RGBA, 8 bits).
pub struct Shot {
    pub width: u32,
    pub height: u32,
    pub channels: usize,
    pub pixels: Vec<u8>,
}

impl Shot {
    pub fn read(png_path: &Path) -> Shot {
        let file = std::fs::File::open(png_path)
            .unwrap_or_else(|e| panic!("no screenshot {}: {e}", png_path.display()));
        let decoder = png::Decoder::new(std::io::BufReader::new(file));
        let mut reader = decoder.read_info().expect("PNG header");
        let mut buf = vec![0; reader.output_buffer_size().expect("PNG size")];
        let info = reader.next_frame(&mut buf).expect("PNG data");
        buf.truncate(info.buffer_size());
        Shot {
            width: info.width,
            height: info.height,
            channels: info.color_type.samples(),
            pixels: buf,
        }
    }

    /// The pixel at (x, y), RGB.
    pub fn at(&self, x: u32, y: u32) -> [u8; 3] {
        let i = (y as usize * self.width as usize + x as usize) * self.channels;
        match self.pixels.get(i..i + 3) {
            Some([r, g, b]) => [*r, *g, *b],
            _ => [0, 0, 0],
        }
    }

    /// How many pixels differ from the top-left one (the background).
    pub fn not_background(&self) -> usize {
        let bg = self.at(0, 0);
        self.pixels
            .chunks(self.channels)
            .filter(|p| p.get(..3) != Some(&bg[..]))
            .count()
    }

    /// Distinct colours, up to 1000.
    pub fn colours(&self) -> usize {
        let mut seen = std::collections::HashSet::new();
        for p in self.pixels.chunks(self.channels) {
            seen.insert(p.get(..3).map(<[u8]>::to_vec));
            if seen.len() >= 1000 {
                break;
            }
        }
        seen.len()
    }
}

/// Luma of a pixel, 0 to 255.
pub fn luma([r, g, b]: [u8; 3]) -> u32 {
    (299 * r as u32 + 587 * g as u32 + 114 * b as u32) / 1000
}
