//! End-to-end test of `capdiag watch` on live traffic, in two network namespaces this test
//! creates and removes (addresses 10.79.0.0/24 and 10.79.1.0/24 exist only inside them).
//!
//! The server namespace runs nginx: `/v2/` answers 401 with a Bearer realm at 10.79.1.5, an
//! address routed into the server namespace, which does not forward, so the client's SYNs to it
//! are silently dropped; any other path answers nginx's HTML 404, here to S3-signed requests
//! (`curl --aws-sigv4`). `capdiag watch -i <veth> --format ndjson -w FILE` runs in the client
//! namespace; the test waits for both findings on its output, then stops it, and checks that
//! `capdiag analyze FILE` finds the same rules at the same key frames.
//!
//! Needs root, iproute2, nginx and curl: `.ci/run` installs them and runs this test with
//! `cargo test -- --include-ignored`.

use serde_json::Value;
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

struct Lab {
    client: String,
    server: String,
    dir: std::path::PathBuf,
    nginx_pid: std::path::PathBuf,
}

fn sh(args: &[&str]) {
    let st = Command::new(args[0])
        .args(&args[1..])
        .status()
        .unwrap_or_else(|e| panic!("{args:?}: {e}"));
    assert!(st.success(), "{args:?} failed");
}

impl Lab {
    fn new() -> Lab {
        let id = std::process::id();
        let lab = Lab {
            client: format!("cdw{id}c"),
            server: format!("cdw{id}s"),
            dir: std::env::temp_dir().join(format!("capdiag-watch-{id}")),
            nginx_pid: std::env::temp_dir().join(format!("capdiag-watch-{id}/nginx.pid")),
        };
        std::fs::create_dir_all(&lab.dir).expect("tmp dir");
        let (c, s) = (lab.client.as_str(), lab.server.as_str());
        sh(&["ip", "netns", "add", c]);
        sh(&["ip", "netns", "add", s]);
        sh(&["ip", "-n", c, "link", "set", "lo", "up"]);
        sh(&["ip", "-n", s, "link", "set", "lo", "up"]);
        sh(&[
            "ip", "-n", c, "link", "add", "eth0", "type", "veth", "peer", "name", "eth0", "netns",
            s,
        ]);
        sh(&["ip", "-n", c, "addr", "add", "10.79.0.1/24", "dev", "eth0"]);
        sh(&["ip", "-n", s, "addr", "add", "10.79.0.2/24", "dev", "eth0"]);
        sh(&["ip", "-n", c, "link", "set", "eth0", "up"]);
        sh(&["ip", "-n", s, "link", "set", "eth0", "up"]);
        // The realm's network is routed to the server namespace, which does not forward:
        // packets to it are dropped without an answer.
        sh(&[
            "ip",
            "-n",
            c,
            "route",
            "add",
            "10.79.1.0/24",
            "via",
            "10.79.0.2",
        ]);
        sh(&[
            "ip",
            "netns",
            "exec",
            s,
            "sysctl",
            "-qw",
            "net.ipv4.ip_forward=0",
        ]);
        let d = lab.dir.display();
        let conf = format!(
            r#"daemon on;
pid {d}/nginx.pid;
error_log {d}/error.log;
events {{}}
http {{
  access_log off;
  client_body_temp_path {d}; proxy_temp_path {d}; fastcgi_temp_path {d}; uwsgi_temp_path {d}; scgi_temp_path {d};
  server {{
    listen 10.79.0.2:80;
    location /v2/ {{
      default_type application/json;
      add_header Www-Authenticate 'Bearer realm="http://10.79.1.5/token",service="lab-registry"' always;
      return 401 '{{"errors":[{{"code":"UNAUTHORIZED"}}]}}';
    }}
    location / {{ return 404; }}
  }}
}}
"#
        );
        let conf_path = lab.dir.join("nginx.conf");
        std::fs::write(&conf_path, conf).expect("nginx.conf");
        sh(&[
            "ip",
            "netns",
            "exec",
            s,
            "nginx",
            "-c",
            conf_path.to_str().expect("path"),
        ]);
        lab
    }

    fn curl(&self, args: &[&str]) -> String {
        let o = Command::new("ip")
            .args(["netns", "exec", &self.client, "curl", "-s"])
            .args(args)
            .output()
            .expect("curl");
        String::from_utf8_lossy(&o.stdout).into_owned()
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        if let Ok(pid) = std::fs::read_to_string(&self.nginx_pid) {
            let _ = Command::new("kill").arg(pid.trim()).status();
        }
        let _ = Command::new("ip")
            .args(["netns", "del", &self.client])
            .status();
        let _ = Command::new("ip")
            .args(["netns", "del", &self.server])
            .status();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
}

#[test]
#[ignore = "needs root, iproute2, nginx and curl; run by .ci/run"]
fn watch_reports_findings_live_and_its_file_gives_the_same_ones() {
    assert!(
        is_root(),
        "this test must run as root (it creates network namespaces)"
    );
    let lab = Lab::new();
    let pcap = lab.dir.join("watch.pcap");
    let mut watch: Child = Command::new("ip")
        .args([
            "netns",
            "exec",
            &lab.client,
            env!("CARGO_BIN_EXE_capdiag"),
            "watch",
            "-i",
            "eth0",
            "--format",
            "ndjson",
            "-w",
        ])
        .arg(&pcap)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start capdiag watch");
    // Wait until it is capturing.
    let mut err = BufReader::new(watch.stderr.take().expect("stderr"));
    let mut line = String::new();
    err.read_line(&mut line).expect("read stderr");
    assert!(line.contains("watching eth0"), "{line}");
    // Lines of output, as they come.
    let (tx, rx) = mpsc::channel::<String>();
    let stdout = watch.stdout.take().expect("stdout");
    let reader = std::thread::spawn(move || {
        for l in BufReader::new(stdout).lines().map_while(Result::ok) {
            if tx.send(l).is_err() {
                break;
            }
        }
    });
    let start = Instant::now();
    let body = lab.curl(&["http://10.79.0.2/v2/"]);
    assert!(body.contains("UNAUTHORIZED"), "{body}");
    // The client follows the realm: its SYNs go unanswered (curl gives up after 4 s).
    lab.curl(&[
        "--connect-timeout",
        "4",
        "http://10.79.1.5/token?service=lab-registry",
    ]);
    let html = lab.curl(&[
        "--aws-sigv4",
        "aws:amz:us-east-1:s3",
        "--user",
        "AKIDLAB:secretlab",
        "http://10.79.0.2/bucket/key",
    ]);
    assert!(html.contains("<html>"), "{html}");
    let mut live: Vec<Value> = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(60);
    while live.len() < 2 && Instant::now() < deadline {
        if let Ok(l) = rx.recv_timeout(Duration::from_millis(500)) {
            let v: Value =
                serde_json::from_str(&l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}"));
            assert_eq!(v["type"], "finding", "{l}");
            eprintln!(
                "finding after {:.1} s: {} key frame {}",
                start.elapsed().as_secs_f64(),
                v["rule"],
                v["key_frame"]
            );
            live.push(v);
        }
    }
    let rules: Vec<&str> = live.iter().filter_map(|v| v["rule"].as_str()).collect();
    assert!(
        rules.contains(&"auth-realm-unreachable") && rules.contains(&"s3-error-not-xml"),
        "printed before the stop: {rules:?}"
    );
    // Stop it as a person would.
    sh(&["kill", "-INT", &watch.id().to_string()]);
    let status = watch.wait().expect("wait");
    let _ = reader.join();
    let summary: Vec<String> = rx.try_iter().collect();
    let last: Value =
        serde_json::from_str(summary.last().expect("summary line")).expect("summary JSON");
    assert_eq!(last["type"], "summary");
    assert_eq!(last["stopped_by"], "signal");
    assert_eq!(last["kernel"]["dropped_by_kernel"], 0);
    assert_eq!(status.code(), Some(1), "findings of error severity: exit 1");
    // The file it wrote gives the same findings at the same frames.
    let o = Command::new(env!("CARGO_BIN_EXE_capdiag"))
        .args(["analyze", "--format", "json"])
        .arg(&pcap)
        .output()
        .expect("analyze");
    let offline: Value = serde_json::from_slice(&o.stdout).expect("analyze JSON");
    let offline = offline["findings"].as_array().cloned().unwrap_or_default();
    assert_eq!(offline.len(), live.len(), "{offline:#?}");
    assert_eq!(
        offline
            .first()
            .and_then(|f| f["frames"].as_array())
            .map(|_| ()),
        Some(())
    );
    for f in &live {
        let same = offline
            .iter()
            .find(|g| g["rule"] == f["rule"] && g["key_frame"] == f["key_frame"])
            .unwrap_or_else(|| {
                panic!(
                    "offline has no {} at key frame {}: {offline:#?}",
                    f["rule"], f["key_frame"]
                )
            });
        assert_eq!(same["frames"], f["frames"], "{}", f["rule"]);
    }

    // `--snaplen 0` is tcpdump's "whole packets"; a summary that cannot be written (a full
    // disk) is an error, exit 2, not silence.
    let full = std::fs::OpenOptions::new()
        .write(true)
        .open("/dev/full")
        .expect("/dev/full");
    let watch = Command::new("ip")
        .args(["netns", "exec", &lab.client, env!("CARGO_BIN_EXE_capdiag")])
        .args([
            "watch",
            "-i",
            "eth0",
            "--snaplen",
            "0",
            "-c",
            "4",
            "--format",
            "ndjson",
        ])
        .stdout(Stdio::from(full))
        .stderr(Stdio::piped())
        .spawn()
        .expect("start capdiag watch");
    std::thread::sleep(Duration::from_millis(500));
    let body = lab.curl(&["http://10.79.0.2/v2/"]);
    assert!(body.contains("UNAUTHORIZED"), "{body}");
    let o = watch.wait_with_output().expect("wait");
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(2), "{err}");
    assert!(
        err.contains("writing output: No space left on device"),
        "{err}"
    );
    assert!(!err.contains("snaplen"), "{err}");
}
