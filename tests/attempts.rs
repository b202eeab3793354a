//! Connection attempts on real captures: what happened to each client's SYNs, with frames.

use capdiag::capture::file::CaptureReader;
use capdiag::engine::Limits;
use capdiag::engine::{Engine, Event, Sink};
use capdiag::flow::{ConnectionAttempt, Outcome};
use std::path::Path;

#[derive(Default)]
struct Attempts(Vec<ConnectionAttempt>);

impl Sink for Attempts {
    fn event(&mut self, ev: Event<'_>) {
        if let Event::Attempt(a) = ev {
            self.0.push(a.clone());
        }
    }
}

fn attempts(rel: &str) -> Vec<ConnectionAttempt> {
    let p = Path::new(env!("CARGO_MANIFEST_DIR")).join(rel);
    let mut r = CaptureReader::new(std::fs::File::open(&p).expect("open")).expect("capture");
    let mut e = Engine::new(Limits::default());
    let mut s = Attempts::default();
    r.for_each_frame(|f| {
        e.frame(f, &mut s);
    });
    e.finish(&mut s);
    s.0.sort_by_key(|a| a.stream);
    s.0
}

#[test]
fn unanswered_syns_to_an_unreachable_realm() {
    // samples/registry/README.md: SYNs to 10.77.0.60:80 in frames 11-14, never answered.
    let a = attempts("samples/registry/auth-realm-unreachable.pcap");
    let realm = a
        .iter()
        .find(|a| a.server.to_string() == "10.77.0.60:80")
        .expect("attempt to the realm");
    assert_eq!(realm.outcome, Outcome::NoAnswer);
    assert_eq!(realm.syn_frames, [11, 12, 13, 14]);
    assert_eq!(realm.retransmitted_syns(), 3);
    assert_eq!(realm.syn_ack_frame, None);
    let registry = a
        .iter()
        .find(|a| a.server.port() == 5000)
        .expect("attempt to the registry");
    assert_eq!(registry.outcome, Outcome::Answered);
}

#[test]
fn refused_realm_is_answered_by_reset() {
    let a = attempts("samples/registry/auth-realm-refused.pcap");
    let realm = a
        .iter()
        .find(|a| a.server.port() == 8080)
        .expect("attempt to the realm");
    assert_eq!(realm.outcome, Outcome::Refused);
    assert_eq!(
        (realm.syn_frames.as_slice(), realm.rst_frame),
        (&[11][..], Some(12))
    );
}

#[test]
fn port_scan_outcomes() {
    // A connect scan: open ports answer SYN-ACK, closed ones RST.
    let a = attempts("tests/corpus/ndpi/tcp_scan.pcapng");
    assert!(a.iter().any(|a| a.outcome == Outcome::Answered));
    assert!(a.iter().any(|a| a.outcome == Outcome::Refused));
    for x in &a {
        assert_eq!(
            x.syn_frames.len(),
            1,
            "stream {}: {:?}",
            x.stream,
            x.syn_frames
        );
    }
}

#[test]
fn retransmitted_syn_in_a_real_capture() {
    let a = attempts(
        "tests/corpus/suricata-verify/tcp-rst-unacked-stream-10/TLPW1-tcp-174.56.47.59-10.3.11.101-tcp-80-49309.pcap",
    );
    let first = a.first().expect("attempt");
    assert!(first.retransmitted_syns() >= 1, "{first:?}");
    assert_eq!(first.outcome, Outcome::Answered);
}

#[test]
fn the_same_packet_captured_twice_on_any_is_not_a_retransmission() {
    // samples/any-duplicates.pcap: `tcpdump -i any` on a bridge sees every frame on two ports.
    let a = attempts("samples/any-duplicates.pcap");
    assert_eq!(a.len(), 2);
    for x in &a {
        assert_eq!(
            x.syn_count, 1,
            "the second copy of the SYN is not a retransmission: {x:?}"
        );
        assert_eq!(x.outcome, Outcome::Answered);
    }
}
