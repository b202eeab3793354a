//! Where capdiag sees HTTP that tshark does not, pinned with the reason found in the bytes.
//! (The reverse, messages tshark shows that capdiag does not, is `tests/oracle/differences.tsv`.)

use serde_json::Value;
use std::path::Path;
use std::process::Command;

fn exchanges(rel: &str) -> Vec<Value> {
    let p = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/corpus")
        .join(rel);
    let o = Command::new(env!("CARGO_BIN_EXE_capdiag"))
        .args(["http", "--format", "json"])
        .arg(&p)
        .output()
        .expect("run");
    assert!(o.status.success());
    let v: Value = serde_json::from_slice(&o.stdout).expect("json");
    v["exchanges"].as_array().cloned().unwrap_or_default()
}

/// The golden tshark output shows only the GET (frame 4): Wireshark does not take the
/// lower-case `http/1.1 200 ok` status line on port 1234 for HTTP. capdiag finds HTTP by content
/// and accepts the lower-case version (noting it); the chunked body is cut by the server's FIN
/// (frame 9) before its terminator, so the response is listed as cut short.
#[test]
fn lower_case_status_line_on_a_non_standard_port() {
    let ex = exchanges("zeek/http/http-lower-case-nonstandard-port.pcap");
    let r = &ex[0]["response"];
    assert_eq!(
        (r["status"].as_u64(), r["first_frame"].as_u64()),
        (Some(200), Some(6))
    );
    assert_eq!(r["anomalies"][0], "lower_case_version");
    assert_eq!(r["complete"], false);
    assert_eq!(ex[0]["request"]["frame"], 4);
    assert!(
        ex[0]["server"]
            .as_str()
            .is_some_and(|s| s.ends_with(":1234"))
    );
}

/// tshark shows the GET (frame 8) but not the response: the server's SYN-ACK is not in the
/// capture. capdiag finds the 200 at frame 10; the capture ends 1,144 bytes into a
/// 104,528-byte body, so it is marked cut short.
#[test]
fn response_after_a_missing_syn_ack() {
    let ex = exchanges("arkime/no-syn-ack.pcap");
    let e = ex
        .iter()
        .find(|e| e["request"]["frame"] == 8)
        .expect("the GET");
    assert_eq!(e["response"]["status"], 200);
    assert_eq!(e["response"]["first_frame"], 10);
    assert_eq!(e["response"]["body_length"], 1144);
    assert_eq!(e["response"]["complete"], false);
}

/// Two stacked 802.1Q tags and a 4,418-byte (GRO) frame: tshark does not report the response;
/// capdiag does, at frame 6, cut short by the end of the capture.
#[test]
fn response_in_an_oversized_frame_with_two_vlan_tags() {
    let ex = exchanges("arkime/twovlan.pcap");
    assert_eq!(ex[0]["request"]["frame"], 4);
    assert_eq!(ex[0]["response"]["status"], 200);
    assert_eq!(ex[0]["response"]["first_frame"], 6);
    assert_eq!(ex[0]["response"]["body_length"], 4344 - 997);
}

/// A browser's GET sent to an SSH server on port 22: tshark decodes the port as SSH and shows
/// no HTTP at all; capdiag shows the request, unanswered (the SSH banner is not HTTP).
#[test]
fn http_sent_to_an_ssh_port() {
    let ex = exchanges("zeek/http/get-to-ssh-server.pcap");
    assert_eq!(ex.len(), 1);
    assert_eq!(ex[0]["request"]["method"], "GET");
    assert!(ex[0]["server"].as_str().is_some_and(|s| s.ends_with(":22")));
    assert!(ex[0]["response"].is_null());
}
