//! Connection records on real captures: Zeek's `conn_state` and history, and byte and packet
//! counts, held against tshark's view of the same frames (`tcp.len` summed per stream and
//! sender, `tcp.options.mss_val`).

use capdiag::capture::file::CaptureReader;
use capdiag::engine::{Engine, Event, Limits, Sink};
use capdiag::flow::ConnRecord;
use std::path::Path;

#[derive(Default)]
struct Records(Vec<ConnRecord>);

impl Sink for Records {
    fn event(&mut self, ev: Event<'_>) {
        if let Event::ConnEnd(c) = ev {
            self.0.push(c.clone());
        }
    }
}

fn records(rel: &str) -> Vec<ConnRecord> {
    let p = Path::new(env!("CARGO_MANIFEST_DIR")).join(rel);
    let mut r = CaptureReader::new(std::fs::File::open(&p).expect("open")).expect("capture");
    let mut limits = Limits::default();
    limits.flow.records = true;
    let mut e = Engine::new(limits);
    let mut s = Records::default();
    r.for_each_frame(|f| {
        e.frame(f, &mut s);
    });
    e.finish(&mut s);
    s.0.sort_by_key(|c| (c.stream, c.first_frame));
    s.0
}

/// `stream state history orig>resp packets o/r bytes o/r mss o/r`; packets are counted until
/// the connection closed (tshark counts the final ACK too).
fn brief(c: &ConnRecord) -> String {
    format!(
        "{} {} {} {} {}>{} pkts {}/{} bytes {}/{} mss {}/{}{}",
        c.stream,
        c.conn_state.as_str(),
        c.history,
        c.service.unwrap_or("-"),
        c.orig,
        c.resp,
        c.orig_side.packets,
        c.resp_side.packets,
        c.orig_side.bytes,
        c.resp_side.bytes,
        c.orig_side.mss.map_or("-".into(), |m| m.to_string()),
        c.resp_side.mss.map_or("-".into(), |m| m.to_string()),
        if c.resumed { " resumed" } else { "" }
    )
}

fn briefs(rel: &str) -> Vec<String> {
    records(rel).iter().map(brief).collect()
}

#[test]
fn an_exchange_and_an_unanswered_realm() {
    // tshark: stream 0, 10.77.0.10 sent 6 frames (the final ACK too) and 152 payload bytes,
    // 10.77.0.20 4 and 485; stream 1, four
    // SYNs to 10.77.0.60:80 (frames 11-14), nothing back.
    assert_eq!(
        briefs("samples/registry/auth-realm-unreachable.pcap"),
        [
            "0 SF ShADadFf http 10.77.0.10:50646>10.77.0.20:5000 pkts 6/4 bytes 152/485 mss 1460/1460",
            "1 S0 S - 10.77.0.10:39888>10.77.0.60:80 pkts 4/0 bytes 0/0 mss 1460/-",
        ]
    );
}

#[test]
fn a_refused_realm() {
    // Frame 11 SYN to 10.77.0.50:8080, frame 12 RST-ACK.
    let b = briefs("samples/registry/auth-realm-refused.pcap");
    assert_eq!(
        b[1],
        "1 REJ Sr - 10.77.0.10:47482>10.77.0.50:8080 pkts 1/1 bytes 0/0 mss 1460/-"
    );
}

#[test]
fn three_connections_through_a_proxy() {
    // tshark: stream 1 (loopback to the proxy) 510 + 247 bytes, stream 2 488 / 247.
    assert_eq!(
        briefs("samples/registry/presigned-403.pcap"),
        [
            "0 SF ShADadFf http 10.77.0.10:50628>10.77.0.20:5000 pkts 6/4 bytes 169/625 mss 1460/1460",
            "1 SF ShADadFf http 127.0.0.1:37596>127.0.0.1:3128 pkts 6/4 bytes 510/247 mss 65495/65495",
            "2 SF ShADadFf http 10.77.0.10:59112>10.77.0.30:9000 pkts 6/4 bytes 488/247 mss 1460/1460",
        ]
    );
}

#[test]
fn every_connection_of_every_sample_has_one_record_from_its_first_frame() {
    for s in [
        "samples/registry/s3-html-error.pcap",
        "samples/registry/s3-xml-error-healthy.pcap",
        "samples/registry/presigned-redirect-healthy.pcap",
        "samples/registry/auth-realm-reachable.pcap",
        "samples/mixed-linktypes.pcapng",
        "samples/tls-probe-400.pcap",
    ] {
        let rs = records(s);
        let first: Vec<_> = rs.iter().filter(|r| !r.resumed).collect();
        let mut streams: Vec<u64> = first.iter().map(|r| r.stream).collect();
        streams.dedup();
        assert_eq!(streams.len(), first.len(), "{s}: one record per stream");
        assert!(!first.is_empty(), "{s}");
        for r in first {
            assert!(
                r.first_frame >= 1 && r.first_frame <= r.last_frame,
                "{s}: {r:?}"
            );
            assert!(r.last_ts >= r.first_ts, "{s}");
            // Every connection of these captures was captured from its SYN.
            assert!(r.history.starts_with('S'), "{s}: {}", brief(r));
        }
    }
}

#[test]
fn the_first_bytes_name_the_service() {
    // A TLS ClientHello answered by a plain-HTTP 400 (samples/README.md): both are named.
    let rs = records("samples/tls-probe-400.pcap");
    assert!(
        rs.iter().any(|r| r.service == Some("tls,http")),
        "{:?}",
        rs.iter().map(brief).collect::<Vec<_>>()
    );
}
