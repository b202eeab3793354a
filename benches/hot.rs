//! Micro-benchmarks of the hot parts: `cargo bench --bench hot`.

use capdiag::capture::file::CaptureReader;
use capdiag::capture::{Frame, LinkType};
use capdiag::engine::{Engine, Sink};
use capdiag::flow::reassembly::Reassembler;
use capdiag::http::parser::Origin;
use capdiag::http::{HttpConn, Limits};
use divan::{Bencher, black_box};

fn main() {
    divan::main();
}

/// Every frame of a committed sample, owned.
fn frames(rel: &str) -> Vec<(LinkType, Vec<u8>, u32)> {
    let p = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(rel);
    let mut r = CaptureReader::new(std::fs::File::open(p).expect("sample")).expect("capture");
    let mut v = Vec::new();
    r.for_each_frame(|f| v.push((f.link_type, f.data.to_vec(), f.wire_len)));
    v
}

#[divan::bench]
fn decode_frames(b: Bencher) {
    let fs = frames("samples/registry/s3-xml-error-healthy.pcap");
    b.counter(divan::counter::ItemsCount::new(fs.len()))
        .bench(|| {
            for (i, (lt, d, w)) in fs.iter().enumerate() {
                let f = Frame {
                    number: i as u64 + 1,
                    ts: 0,
                    link_type: *lt,
                    wire_len: *w,
                    data: d,
                };
                black_box(capdiag::decode::decode(&f));
            }
        });
}

#[divan::bench]
fn reassemble_in_order(b: Bencher) {
    let seg = vec![b'x'; 1448];
    b.counter(divan::counter::BytesCount::new(1448usize * 1000))
        .bench(|| {
            let mut r = Reassembler::new(1 << 20);
            let mut n = 0usize;
            for i in 0..1000u32 {
                r.segment(
                    i.wrapping_mul(1448),
                    false,
                    false,
                    false,
                    &seg,
                    1448,
                    u64::from(i),
                    &mut |_| n += 1,
                );
            }
            black_box(n)
        });
}

#[divan::bench]
fn parse_exchange(b: Bencher) {
    let req: &[u8] = b"GET /v2/library/alpine/manifests/latest HTTP/1.1\r\nHost: registry:5000\r\nUser-Agent: docker/24.0.7\r\nAccept: application/vnd.docker.distribution.manifest.v2+json\r\nAuthorization: Bearer abc\r\n\r\n";
    let resp: &[u8] = b"HTTP/1.1 200 OK\r\nContent-Type: application/vnd.docker.distribution.manifest.v2+json\r\nContent-Length: 16\r\nDocker-Content-Digest: sha256:0\r\nDate: Wed, 25 Nov 2026 17:23:44 GMT\r\n\r\n{\"schemaVersion\"}";
    let a = "10.0.0.1:1".parse().expect("addr");
    let s = "10.0.0.2:5000".parse().expect("addr");
    let o = Origin {
        frame: 1,
        arrival: 1,
        ts: 0,
    };
    b.bench(|| {
        let mut c = HttpConn::new(0, [a, s], Limits::default(), 16);
        c.data(0, req, o);
        c.data(1, resp, o);
        black_box(c.take_exchanges().count())
    });
}

struct Count(u64);
impl Sink for Count {
    fn event(&mut self, ev: capdiag::engine::Event<'_>) {
        if let capdiag::engine::Event::Exchange(_) = ev {
            self.0 += 1;
        }
    }
}

#[divan::bench]
fn engine_over_a_sample(b: Bencher) {
    let fs = frames("samples/registry/s3-xml-error-healthy.pcap");
    b.counter(divan::counter::ItemsCount::new(fs.len()))
        .bench(|| {
            let mut e = Engine::new(capdiag::engine::Limits::default());
            let mut sink = Count(0);
            for (i, (lt, d, w)) in fs.iter().enumerate() {
                let f = Frame {
                    number: i as u64 + 1,
                    ts: i as i64 * 1000,
                    link_type: *lt,
                    wire_len: *w,
                    data: d,
                };
                e.frame(&f, &mut sink);
            }
            e.finish(&mut sink);
            black_box(sink.0)
        });
}
