//! Both directions of one TCP connection through `capdiag::tls::TlsConn` (TLS read without
//! keys).
//!
//! Input layout: byte 0 flags (bit 0: gaps are inserted; bits 1–2: largest chunk, 8, 64, 512 or
//! 4096 bytes; bit 3: each direction ends with a FIN; bit 4: a small handshake limit), bytes 1–8
//! the seed that chooses chunk sizes and the interleaving, then the client's bytes,
//! [`SPLIT`], the server's bytes.
//!
//! After the connection closes its summary is checked: every frame it names is one that was
//! fed, the kept lists stay within their bounds.
#![no_main]

use capdiag::flow::Origin;
use capdiag::tls::{Limits, TlsConn};
use libfuzzer_sys::fuzz_target;
use std::net::SocketAddr;

pub const SPLIT: &[u8] = b"\x00\xffSPLIT\xff\x00";

struct Rng(u64);

impl Rng {
    fn below(&mut self, n: u64) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_f491_4f6c_dd1d) % n
    }
}

fuzz_target!(|data: &[u8]| {
    if data.len() < 9 {
        return;
    }
    let (ctrl, rest) = data.split_at(9);
    let flags = ctrl[0];
    let mut seed = [0u8; 8];
    seed.copy_from_slice(&ctrl[1..9]);
    let mut rng = Rng(u64::from_le_bytes(seed) | 1);
    let (client, server) = match rest.windows(SPLIT.len()).position(|w| w == SPLIT) {
        Some(i) => (&rest[..i], &rest[i + SPLIT.len()..]),
        None => (rest, &rest[rest.len()..]),
    };
    let gaps = flags & 1 != 0;
    let max_chunk: u64 = [8, 64, 512, 4096][usize::from((flags >> 1) & 3)];
    let fins = flags & 8 != 0;
    let limits = if flags & 16 != 0 {
        Limits { max_handshake: 64 }
    } else {
        Limits::default()
    };
    let a: SocketAddr = SocketAddr::from(([10, 0, 0, 1], 40000));
    let b: SocketAddr = SocketAddr::from(([10, 0, 0, 2], 443));
    let mut conn = TlsConn::new(3, [a, b], limits, None);
    let mut left: [&[u8]; 2] = [client, server];
    let mut fin_sent = [false; 2];
    let mut frame: u64 = 0;
    let mut dir = 0usize;
    let o = |frame: u64| Origin {
        frame,
        arrival: frame,
        ts: frame as i64 * 1_000_000,
    };
    while !left[0].is_empty() || !left[1].is_empty() {
        if left[dir].is_empty() || (!left[1 - dir].is_empty() && rng.below(4) == 0) {
            dir = 1 - dir;
        }
        frame += 1;
        if gaps && rng.below(16) == 0 {
            let len = 1 + rng.below(1500);
            let skip = (len as usize).min(left[dir].len());
            left[dir] = &left[dir][skip..];
            conn.gap(dir, len, o(frame));
        } else {
            let n = (1 + rng.below(max_chunk) as usize).min(left[dir].len());
            let (now, later) = left[dir].split_at(n);
            left[dir] = later;
            conn.data(dir, now, o(frame), &mut |_, _, _| {});
        }
        if fins && left[dir].is_empty() && !fin_sent[dir] {
            fin_sent[dir] = true;
            frame += 1;
            conn.fin(dir, o(frame));
        }
    }
    frame += 1;
    conn.close(o(frame), &mut |_, _, _| {});
    let Some(s) = conn.take_summary() else {
        panic!("no summary after close");
    };
    let frames = s
        .client_hello
        .iter()
        .map(|h| h.frame)
        .chain(s.server_hello.iter().map(|h| h.frame))
        .chain(s.certificate_frame)
        .chain(s.alerts.iter().map(|a| a.frame))
        .chain(s.outcome_frame)
        .chain(s.plaintext.iter().map(|p| p.0));
    for f in frames {
        assert!((1..=frame).contains(&f), "frame {f} not fed (last {frame})");
    }
    assert!(s.alerts.len() <= 8 && s.certificates.len() <= 8);
    assert!(s.client_side.first_encrypted_sizes.len() <= 4);
    assert!(conn.take_summary().is_none(), "a second summary");
});
