//! What `capdiag --version` says besides the version: the commit the binary was built from
//! (`git rev-parse`, `unknown` outside a git checkout; "with local changes" when the sources
//! differ from it) and the libpcap version it was built with (`pkg-config`, as the pcap crate
//! finds libpcap; `unknown` without it).

use std::process::Command;

fn output(cmd: &str, args: &[&str]) -> Option<String> {
    let o = Command::new(cmd).args(args).output().ok()?;
    let s = String::from_utf8(o.stdout).ok()?.trim().to_string();
    (o.status.success() && !s.is_empty()).then_some(s)
}

/// What the binary is built from, besides the commit: the sources, the manifest, the lock file.
const BUILT_FROM: [&str; 4] = ["src", "build.rs", "Cargo.toml", "Cargo.lock"];

fn main() {
    let mut commit =
        output("git", &["rev-parse", "--short=12", "HEAD"]).unwrap_or_else(|| "unknown".into());
    // Built from a tree that differs from its commit: say so, so that a binary handed on is
    // not taken for the commit's own.
    let mut status = vec![
        "--no-optional-locks",
        "status",
        "--porcelain",
        "--untracked-files=no",
        "--",
    ];
    status.extend(BUILT_FROM);
    if commit != "unknown" && output("git", &status).is_some() {
        commit.push_str(" with local changes");
    }
    let libpcap = output("pkg-config", &["--modversion", "libpcap"])
        .or_else(|| output("pcap-config", &["--version"]))
        .unwrap_or_else(|| "unknown".into());
    println!("cargo:rustc-env=CAPDIAG_COMMIT={commit}");
    println!("cargo:rustc-env=CAPDIAG_LIBPCAP={libpcap}");
    // A new commit (HEAD moves, or the branch it names does), or a change to what is built.
    for p in BUILT_FROM {
        println!("cargo:rerun-if-changed={p}");
    }
    // Where git keeps them (in a worktree, `.git` is a file naming another directory).
    for p in ["HEAD", "refs/heads", "packed-refs"] {
        if let Some(path) = output("git", &["rev-parse", "--git-path", p])
            && std::path::Path::new(&path).exists()
        {
            println!("cargo:rerun-if-changed={path}");
        }
    }
    println!("cargo:rerun-if-env-changed=PKG_CONFIG_PATH");
}
