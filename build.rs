//! What `capdiag --version` says besides the version: the commit the binary was built from
//! (`git rev-parse`, `unknown` outside a git checkout) and the libpcap version it was built
//! with (`pkg-config`, as the pcap crate finds libpcap; `unknown` without it).

use std::process::Command;

fn output(cmd: &str, args: &[&str]) -> Option<String> {
    let o = Command::new(cmd).args(args).output().ok()?;
    let s = String::from_utf8(o.stdout).ok()?.trim().to_string();
    (o.status.success() && !s.is_empty()).then_some(s)
}

fn main() {
    let commit =
        output("git", &["rev-parse", "--short=12", "HEAD"]).unwrap_or_else(|| "unknown".into());
    let libpcap = output("pkg-config", &["--modversion", "libpcap"])
        .or_else(|| output("pcap-config", &["--version"]))
        .unwrap_or_else(|| "unknown".into());
    println!("cargo:rustc-env=CAPDIAG_COMMIT={commit}");
    println!("cargo:rustc-env=CAPDIAG_LIBPCAP={libpcap}");
    // A new commit (HEAD moves, or the branch it names does).
    for p in [".git/HEAD", ".git/refs/heads", ".git/packed-refs"] {
        if std::path::Path::new(p).exists() {
            println!("cargo:rerun-if-changed={p}");
        }
    }
    println!("cargo:rerun-if-env-changed=PKG_CONFIG_PATH");
}
