//! Both directions of one TCP connection through `capdiag::tls::TlsConn` with secrets: the
//! record layer decrypting (TLS 1.2 and 1.3 key schedules, AEADs, epochs, KeyUpdate) on wrong
//! keys, truncated and altered records, bad tags.
//!
//! Input layout: byte 0 flags (bit 0: gaps are inserted; bits 1–2: largest chunk, 8, 64, 512 or
//! 4096 bytes; bit 3: each direction ends with a FIN; bit 4: a small handshake limit; bit 5:
//! the key log is followed, so records wait for secrets), bytes 1–8 the seed that chooses chunk
//! sizes and the interleaving, then a key log (NSS format), [`SPLIT`], the client's bytes,
//! [`SPLIT`], the server's bytes. The seeds (`make-seeds.py`) are the recorded sessions of
//! `samples/tls-keys/` with their key logs.
//!
//! Checked: no panic; every plaintext chunk comes from a frame already fed, no later than the
//! current one, in order per direction; after `close` one summary, every frame it names fed,
//! its records decrypted no more than the records read.
#![no_main]

use capdiag::flow::Origin;
use capdiag::tls::{KeyStore, Limits, TlsConn};
use std::sync::Arc;
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
    let split = |b: &'_ [u8]| -> (Vec<u8>, Vec<u8>) {
        match b.windows(SPLIT.len()).position(|w| w == SPLIT) {
            Some(i) => (b[..i].to_vec(), b[i + SPLIT.len()..].to_vec()),
            None => (b.to_vec(), Vec::new()),
        }
    };
    let (key_log, rest) = split(rest);
    let (client, server) = split(&rest);
    // Followed: the secrets arrive at a chosen frame, after records that wait for them.
    let follow = flags & 32 != 0;
    // A followed key log: a file of this process's, empty until the chosen frame.
    let file = std::env::temp_dir().join(format!("capdiag-fuzz-keys-{}", std::process::id()));
    let keys = Arc::new(if follow {
        std::fs::write(&file, b"").expect("temp key log");
        KeyStore::open(std::slice::from_ref(&file), true).expect("temp key log")
    } else {
        KeyStore::default()
    });
    let mut keys_at = if follow { 1 + rng.below(64) } else { 0 };
    if keys_at == 0 {
        keys.add_embedded("input", capdiag::tls::keys::TLS_KEY_LOG, &key_log);
    }
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
    let mut conn = TlsConn::new(3, [a, b], limits, Some(Arc::clone(&keys)));
    let mut left: [&[u8]; 2] = [&client, &server];
    // The last plaintext frame per direction, and the plaintext bytes.
    let mut plain_frames = [0u64; 2];
    let mut plain_bytes = 0usize;
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
        if keys_at > 0 && frame >= keys_at {
            keys_at = 0;
            std::fs::write(&file, &key_log).expect("temp key log");
        }
        if gaps && rng.below(16) == 0 {
            let len = 1 + rng.below(1500);
            let skip = (len as usize).min(left[dir].len());
            left[dir] = &left[dir][skip..];
            conn.gap(dir, len, o(frame));
        } else {
            let n = (1 + rng.below(max_chunk) as usize).min(left[dir].len());
            let (now, later) = left[dir].split_at(n);
            left[dir] = later;
            let now_frame = frame;
            conn.data(dir, now, o(frame), &mut |d, bytes, at| {
                assert!(d < 2);
                assert!(at.frame <= now_frame && at.frame >= 1, "plaintext from a frame not fed");
                assert!(at.frame >= plain_frames[d], "plaintext out of order");
                plain_frames[d] = at.frame;
                assert!(bytes.len() <= (1 << 14) + 256, "more plaintext than a record holds");
                plain_bytes += bytes.len();
            });
        }
        if fins && left[dir].is_empty() && !fin_sent[dir] {
            fin_sent[dir] = true;
            frame += 1;
            conn.fin(dir, o(frame));
        }
    }
    frame += 1;
    conn.close(o(frame), &mut |d, bytes, at| {
        assert!(d < 2 && at.frame <= frame);
        plain_bytes += bytes.len();
    });
    assert!(plain_bytes <= client.len() + server.len());
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
    if let Some(d) = &s.decryption {
        let records = s.client_side.records + s.server_side.records;
        assert!(d.records <= records, "{} decrypted of {records}", d.records);
        assert!(d.failed_frame.is_none_or(|f| (1..=frame).contains(&f)));
    }
    assert!(conn.take_summary().is_none(), "a second summary");
});
