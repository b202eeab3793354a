//! Both directions of one TCP connection through `capdiag::http::HttpConn`.
//!
//! Input layout:
//! * byte 0: flags — bit 0/1: direction 0/1 starts mid-stream (`start_midstream`); bit 2: gaps
//!   are inserted; bits 3–4: largest chunk (8, 64, 512 or 4096 bytes); bit 5: small parser
//!   limits; bit 6: each direction ends with a FIN; bit 7: keep every body (`BodyPolicy::All`).
//! * bytes 1–8: seed of the generator that chooses chunk sizes, the interleaving of the two
//!   directions and where gaps fall.
//! * the rest: the client's bytes (direction 0), [`SPLIT`], the server's bytes (direction 1).
//!   Without the separator everything is the client's.
//!
//! Each call is one frame (numbers increase by one). A gap of `n` bytes drops up to `n` bytes of
//! that direction's input. After every call the completed exchanges are drained and checked:
//! every message has `1 <= first_frame <= frame <= current frame`, `first_frame <= last_frame`,
//! a request where a request belongs and responses elsewhere, and a body prefix within limits.
//!
//! A second connection is fed the same calls, each chunk with the header block at its start
//! parsed ahead and offered (`parse_ahead`, `HttpConn::offer`), as the reading thread does for
//! segments: its exchanges and counters must be exactly those of the first.
#![no_main]

use capdiag::http::parser::{Origin, parse_ahead};
use capdiag::http::{BodyPolicy, Exchange, HttpConn, Limits, Message};
use libfuzzer_sys::fuzz_target;
use std::net::SocketAddr;

/// Separates the client's bytes from the server's.
pub const SPLIT: &[u8] = b"\x00\xffSPLIT\xff\x00";

struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        // xorshift64*
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

fn check_message(m: &Message, now: u64, limits: &Limits) {
    assert!(m.first_frame >= 1, "first_frame 0");
    assert!(
        m.first_frame <= m.frame,
        "first_frame {} > frame {}",
        m.first_frame,
        m.frame
    );
    assert!(
        m.frame <= now,
        "frame {} is in the future (now {now})",
        m.frame
    );
    assert!(
        m.first_frame <= m.last_frame,
        "first_frame {} > last_frame {}",
        m.first_frame,
        m.last_frame
    );
    assert!(
        m.body.prefix.len() <= limits.body_prefix,
        "body prefix {} over the limit {}",
        m.body.prefix.len(),
        limits.body_prefix
    );
    assert!(
        m.body.prefix.len() as u64 <= m.body.length,
        "body prefix {} longer than the body {}",
        m.body.prefix.len(),
        m.body.length
    );
    // Exercise the accessors the rules and outputs use.
    let _ = (
        m.method(),
        m.uri(),
        m.status(),
        m.version(),
        m.raw_head().len(),
    );
    for (name, value) in m.headers() {
        let _ = (name.len(), value.len());
    }
    let _ = m.header_str("content-type");
    let _ = m.decoded_body(4096);
}

fn check_exchange(ex: &Exchange, now: u64, limits: &Limits) {
    if let Some(req) = &ex.request {
        assert!(req.is_request(), "a response in the request slot");
        check_message(req, now, limits);
    }
    for m in &ex.interim {
        assert!(!m.is_request(), "a request among the interim responses");
        check_message(m, now, limits);
    }
    if let Some(resp) = &ex.response {
        assert!(!resp.is_request(), "a request in the response slot");
        check_message(resp, now, limits);
    }
    assert!(ex.last_frame() <= now);
    let _ = ex.duration_ns();
}

fn drain(conn: &mut HttpConn, ahead: &mut HttpConn, now: u64, limits: &Limits) {
    let got: Vec<Exchange> = conn.take_exchanges().collect();
    for ex in &got {
        check_exchange(ex, now, limits);
    }
    let offered: Vec<Exchange> = ahead.take_exchanges().collect();
    assert_eq!(
        format!("{offered:?}"),
        format!("{got:?}"),
        "header blocks parsed ahead changed the exchanges"
    );
    assert_eq!(
        format!("{:?}", ahead.stats()),
        format!("{:?}", conn.stats()),
        "header blocks parsed ahead changed the counters"
    );
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
    let gaps = flags & 0x04 != 0;
    let max_chunk: u64 = [8, 64, 512, 4096][usize::from((flags >> 3) & 3)];
    let mut limits = if flags & 0x20 != 0 {
        Limits {
            max_header_bytes: 256,
            max_headers: 8,
            body_prefix: 64,
            bodies: BodyPolicy::ErrorResponses,
        }
    } else {
        Limits::default()
    };
    if flags & 0x80 != 0 {
        limits.bodies = BodyPolicy::All;
    }
    let fins = flags & 0x40 != 0;
    let max_pending = if flags & 0x20 != 0 { 2 } else { 1024 };
    let a: SocketAddr = SocketAddr::from(([10, 0, 0, 1], 40000));
    let b: SocketAddr = SocketAddr::from(([10, 0, 0, 2], 80));
    let mut conn = HttpConn::new(7, [a, b], limits, max_pending);
    let mut ahead = HttpConn::new(7, [a, b], limits, max_pending);
    for dir in 0..2 {
        if flags & (1 << dir) != 0 {
            conn.start_midstream(dir);
            ahead.start_midstream(dir);
        }
    }
    let mut left: [&[u8]; 2] = [client, server];
    let mut fin_sent = [false; 2];
    let mut frame: u64 = 0;
    let mut dir = 0usize;
    while !left[0].is_empty() || !left[1].is_empty() {
        if left[dir].is_empty() || (!left[1 - dir].is_empty() && rng.below(4) == 0) {
            dir = 1 - dir;
        }
        frame += 1;
        let o = Origin {
            frame,
            arrival: frame,
            ts: frame as i64 * 1_000_000,
        };
        if gaps && rng.below(16) == 0 {
            let len = 1 + rng.below(1500);
            let skip = (len as usize).min(left[dir].len());
            left[dir] = &left[dir][skip..];
            conn.gap(dir, len, o);
            ahead.gap(dir, len, o);
        } else {
            let n = (1 + rng.below(max_chunk) as usize).min(left[dir].len());
            let (now, later) = left[dir].split_at(n);
            left[dir] = later;
            conn.data(dir, now, o);
            if let Some(head) = parse_ahead(now, limits.max_headers) {
                ahead.offer(dir, now, head);
            }
            ahead.data(dir, now, o);
            ahead.withdraw();
        }
        if fins && left[dir].is_empty() && !fin_sent[dir] {
            fin_sent[dir] = true;
            frame += 1;
            let o = Origin {
                frame,
                arrival: frame,
                ts: frame as i64 * 1_000_000,
            };
            conn.fin(dir, o);
            ahead.fin(dir, o);
        }
        drain(&mut conn, &mut ahead, frame, &limits);
    }
    let _ = (conn.is_http(), conn.is_dead(), conn.stats());
    assert_eq!(
        (ahead.is_http(), ahead.is_dead()),
        (conn.is_http(), conn.is_dead())
    );
    frame += 1;
    let o = Origin {
        frame,
        arrival: frame,
        ts: frame as i64 * 1_000_000,
    };
    conn.close(o);
    ahead.close(o);
    drain(&mut conn, &mut ahead, frame, &limits);
    assert_eq!(conn.take_exchanges().count(), 0);
});
