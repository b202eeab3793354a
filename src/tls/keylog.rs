//! NSS key log files (`SSLKEYLOGFILE`, RFC 9850): the secrets a TLS endpoint logged, by the
//! ClientHello random they belong to. A line is `LABEL SP client_random SP secret`, both in hex
//! of either case; `#` lines and empty lines are comments; lines end with LF, CRLF or CR.
//!
//! Secrets stay in memory: a [`Secret`]'s `Debug` says how long it is, never what it is, it is
//! not `Serialize`, and a malformed line is reported by its number and what is wrong with it,
//! never by its text (it may hold a secret).

use serde::Serialize;
use std::collections::HashMap;

/// Most client randoms a key log holds; the lines of more are counted, not kept.
pub const MAX_RANDOMS: usize = 1 << 20;
/// Longest line read: a key log line is under 250 characters.
pub const MAX_LINE: usize = 1024;
/// Malformed lines reported one by one (all are counted).
pub const MAX_REPORTED: usize = 16;

/// A secret from a key log: its bytes are for deriving keys, and shown nowhere.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(Vec<u8>);

impl Secret {
    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The secret itself, to derive keys from.
    pub fn bytes(&self) -> &[u8] {
        &self.0
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Secret({} bytes)", self.0.len())
    }
}

/// What a key log holds for one connection (one ClientHello random).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Secrets {
    /// TLS ≤ 1.2: the 48-byte master secret (`CLIENT_RANDOM`).
    pub master: Option<Secret>,
    /// TLS 1.3 (`CLIENT_/SERVER_HANDSHAKE_TRAFFIC_SECRET`, `CLIENT_/SERVER_TRAFFIC_SECRET_0`,
    /// `CLIENT_EARLY_TRAFFIC_SECRET`): as long as the suite's hash (32 or 48 bytes).
    pub client_handshake: Option<Secret>,
    pub server_handshake: Option<Secret>,
    pub client_traffic: Option<Secret>,
    pub server_traffic: Option<Secret>,
    pub client_early: Option<Secret>,
}

impl Secrets {
    /// Whether it holds what a connection needs to the end: TLS 1.2's master secret, or TLS
    /// 1.3's application traffic secrets.
    pub fn is_complete(&self) -> bool {
        self.master.is_some() || (self.client_traffic.is_some() && self.server_traffic.is_some())
    }
}

/// What reading key logs found, line by line.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct KeyLogStats {
    pub lines: u64,
    /// Secrets kept (a line repeating one already kept counts once).
    pub secrets: u64,
    /// Comment and empty lines.
    pub comments: u64,
    /// Lines with a label this reader knows and does not need: exporter and ECH secrets, the
    /// old `RSA` label, `*_TRAFFIC_SECRET_N` after a KeyUpdate (derived instead).
    pub unused: u64,
    /// Lines with a label this reader does not know.
    pub unknown_labels: u64,
    /// Lines that are not `LABEL random secret` with hex of the right lengths.
    pub malformed: u64,
    /// Lines that gave another value for a secret already kept (the first is kept).
    pub conflicting: u64,
    /// Lines of client randoms beyond [`MAX_RANDOMS`].
    pub dropped: u64,
}

/// A malformed line: its number (1-based, in the text given) and what is wrong with it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Malformed {
    pub line: u64,
    pub why: &'static str,
}

/// Secrets by ClientHello random.
#[derive(Debug, Default)]
pub struct KeyLog {
    by_random: HashMap<[u8; 32], Secrets>,
    stats: KeyLogStats,
}

enum Slot {
    Master,
    ClientHandshake,
    ServerHandshake,
    ClientTraffic,
    ServerTraffic,
    ClientEarly,
}

fn slot(label: &[u8]) -> Result<Slot, bool> {
    Ok(match label {
        b"CLIENT_RANDOM" => Slot::Master,
        b"CLIENT_HANDSHAKE_TRAFFIC_SECRET" => Slot::ClientHandshake,
        b"SERVER_HANDSHAKE_TRAFFIC_SECRET" => Slot::ServerHandshake,
        b"CLIENT_TRAFFIC_SECRET_0" => Slot::ClientTraffic,
        b"SERVER_TRAFFIC_SECRET_0" => Slot::ServerTraffic,
        b"CLIENT_EARLY_TRAFFIC_SECRET" => Slot::ClientEarly,
        b"EXPORTER_SECRET" | b"EARLY_EXPORTER_SECRET" | b"ECH_SECRET" | b"ECH_CONFIG" | b"RSA" => {
            return Err(true);
        }
        l if (l.starts_with(b"CLIENT_TRAFFIC_SECRET_")
            || l.starts_with(b"SERVER_TRAFFIC_SECRET_"))
            && l.len() > 22 =>
        {
            return Err(true);
        }
        _ => return Err(false),
    })
}

fn unhex(s: &[u8]) -> Option<Vec<u8>> {
    if !s.len().is_multiple_of(2) {
        return None;
    }
    s.chunks_exact(2)
        .map(|p| {
            let d = |c: u8| char::from(c).to_digit(16);
            u8::try_from(d(*p.first()?)? * 16 + d(*p.get(1)?)?).ok()
        })
        .collect()
}

/// The lines of `text`, split at LF, CRLF or CR.
fn lines(text: &[u8]) -> impl Iterator<Item = &[u8]> {
    let mut rest = text;
    std::iter::from_fn(move || {
        if rest.is_empty() {
            return None;
        }
        let end = rest
            .iter()
            .position(|&b| b == b'\n' || b == b'\r')
            .unwrap_or(rest.len());
        let (line, tail) = rest.split_at(end);
        rest = match tail {
            [b'\r', b'\n', more @ ..] => more,
            [_, more @ ..] => more,
            [] => &[],
        };
        Some(line)
    })
}

impl KeyLog {
    /// Reads the lines of a key log (a file, or the secrets a pcapng carries); the malformed
    /// ones are returned (the first [`MAX_REPORTED`]) and all are counted.
    pub fn add(&mut self, text: &[u8]) -> Vec<Malformed> {
        let mut bad = Vec::new();
        for (i, line) in lines(text).enumerate() {
            let n = i as u64 + 1;
            self.stats.lines += 1;
            if let Err(why) = self.line(line) {
                self.stats.malformed += 1;
                if bad.len() < MAX_REPORTED {
                    bad.push(Malformed { line: n, why });
                }
            }
        }
        bad
    }

    fn line(&mut self, line: &[u8]) -> Result<(), &'static str> {
        let line = line.trim_ascii();
        if line.is_empty() || line.starts_with(b"#") {
            self.stats.comments += 1;
            return Ok(());
        }
        if line.len() > MAX_LINE {
            return Err("longer than a key log line can be");
        }
        let mut fields = line
            .split(|b| b.is_ascii_whitespace())
            .filter(|f| !f.is_empty());
        let (Some(label), Some(random), Some(secret), None) =
            (fields.next(), fields.next(), fields.next(), fields.next())
        else {
            return Err("not three fields (label, client random, secret)");
        };
        let slot = match slot(label) {
            Ok(s) => s,
            Err(true) => {
                self.stats.unused += 1;
                return Ok(());
            }
            Err(false) => {
                self.stats.unknown_labels += 1;
                return Ok(());
            }
        };
        let random: [u8; 32] = unhex(random)
            .and_then(|r| r.try_into().ok())
            .ok_or("the client random is not 64 hex digits")?;
        let secret = unhex(secret).ok_or("the secret is not hex")?;
        match slot {
            Slot::Master if secret.len() != 48 => {
                return Err("a CLIENT_RANDOM master secret is 48 bytes");
            }
            Slot::Master => {}
            _ if secret.len() != 32 && secret.len() != 48 => {
                return Err("a TLS 1.3 traffic secret is 32 or 48 bytes");
            }
            _ => {}
        }
        if !self.by_random.contains_key(&random) && self.by_random.len() >= MAX_RANDOMS {
            self.stats.dropped += 1;
            return Ok(());
        }
        let s = self.by_random.entry(random).or_default();
        let place = match slot {
            Slot::Master => &mut s.master,
            Slot::ClientHandshake => &mut s.client_handshake,
            Slot::ServerHandshake => &mut s.server_handshake,
            Slot::ClientTraffic => &mut s.client_traffic,
            Slot::ServerTraffic => &mut s.server_traffic,
            Slot::ClientEarly => &mut s.client_early,
        };
        match place {
            Some(old) if old.0 != secret => self.stats.conflicting += 1,
            Some(_) => {}
            None => {
                *place = Some(Secret(secret));
                self.stats.secrets += 1;
            }
        }
        Ok(())
    }

    /// The secrets logged for the connection whose ClientHello random is `random`.
    pub fn get(&self, random: &[u8; 32]) -> Option<&Secrets> {
        self.by_random.get(random)
    }

    /// Connections (client randoms) with secrets.
    pub fn len(&self) -> usize {
        self.by_random.len()
    }

    pub fn is_empty(&self) -> bool {
        self.by_random.is_empty()
    }

    pub fn stats(&self) -> KeyLogStats {
        self.stats
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const R1: &str = "a1b2c3d4e5f60718293a4b5c6d7e8f90a1b2c3d4e5f60718293a4b5c6d7e8f90";
    const R2: &str = "00112233445566778899AABBCCDDEEFF00112233445566778899aabbccddeeff";

    fn hex(n: usize, b: u8) -> String {
        format!("{b:02x}").repeat(n)
    }

    fn random(s: &str) -> [u8; 32] {
        unhex(s.as_bytes())
            .and_then(|v| v.try_into().ok())
            .unwrap_or([0; 32])
    }

    #[test]
    fn tls12_and_tls13_lines_are_kept_by_client_random() {
        let text = format!(
            "# SSL/TLS secrets log file, generated by OpenSSL\n\
             CLIENT_RANDOM {R1} {}\r\n\
             CLIENT_HANDSHAKE_TRAFFIC_SECRET {R2} {}\r\
             SERVER_HANDSHAKE_TRAFFIC_SECRET {R2} {}\n\
             \n\
             CLIENT_TRAFFIC_SECRET_0 {R2} {}\n\
             SERVER_TRAFFIC_SECRET_0 {R2} {}\n\
             EXPORTER_SECRET {R2} {}\n\
             CLIENT_TRAFFIC_SECRET_1 {R2} {}\n\
             SOMETHING_NEW {R2} {}\n",
            hex(48, 1),
            hex(32, 2),
            hex(32, 3),
            hex(48, 4),
            hex(48, 5),
            hex(32, 6),
            hex(48, 7),
            hex(32, 8),
        );
        let mut k = KeyLog::default();
        assert_eq!(k.add(text.as_bytes()), vec![]);
        assert_eq!(k.len(), 2);
        let s1 = k.get(&random(R1)).expect("R1");
        assert_eq!(s1.master.as_ref().map(|m| m.bytes()), Some(&[1u8; 48][..]));
        let s2 = k.get(&random(R2)).expect("R2, upper-case hex");
        assert_eq!(s2.client_handshake.as_ref().map(Secret::len), Some(32));
        assert_eq!(
            s2.server_handshake.as_ref().map(|m| m.bytes()),
            Some(&[3u8; 32][..])
        );
        assert_eq!(s2.client_traffic.as_ref().map(Secret::len), Some(48));
        assert_eq!(s2.server_traffic.as_ref().map(Secret::len), Some(48));
        let st = k.stats();
        assert_eq!(
            (
                st.lines,
                st.secrets,
                st.comments,
                st.unused,
                st.unknown_labels,
                st.malformed
            ),
            (10, 5, 2, 2, 1, 0)
        );
    }

    #[test]
    fn malformed_lines_are_reported_by_number_without_their_text() {
        let text = format!(
            "CLIENT_RANDOM {R1}\n\
             CLIENT_RANDOM {R1}00 {}\n\
             CLIENT_RANDOM {R1} {}\n\
             SERVER_TRAFFIC_SECRET_0 {R1} {}\n\
             CLIENT_RANDOM {R1} {}zz\n\
             CLIENT_RANDOM {R1} {}\n",
            hex(48, 9),
            hex(32, 9),
            hex(20, 9),
            hex(47, 9),
            hex(48, 9),
        );
        let mut k = KeyLog::default();
        let bad = k.add(text.as_bytes());
        assert_eq!(
            bad.iter().map(|m| m.line).collect::<Vec<_>>(),
            vec![1, 2, 3, 4, 5]
        );
        for m in &bad {
            assert!(!format!("{m:?}").contains("0909"), "{m:?}");
        }
        assert_eq!(k.stats().malformed, 5);
        assert_eq!(k.stats().secrets, 1);
    }

    #[test]
    fn a_secret_never_shows_its_bytes() {
        let mut k = KeyLog::default();
        k.add(format!("CLIENT_RANDOM {R1} {}", hex(48, 0xab)).as_bytes());
        let shown = format!("{k:?}");
        assert!(
            !shown.contains("abab") && !shown.contains("171, 171"),
            "{shown}"
        );
        assert!(shown.contains("Secret(48 bytes)"), "{shown}");
    }

    #[test]
    fn a_second_value_for_a_secret_is_counted_and_the_first_kept() {
        let mut k = KeyLog::default();
        k.add(format!("CLIENT_RANDOM {R1} {}\n", hex(48, 1)).as_bytes());
        k.add(format!("CLIENT_RANDOM {R1} {}\n", hex(48, 1)).as_bytes());
        k.add(format!("CLIENT_RANDOM {R1} {}\n", hex(48, 2)).as_bytes());
        assert_eq!((k.stats().secrets, k.stats().conflicting), (1, 1));
        let s = k.get(&random(R1)).and_then(|s| s.master.as_ref());
        assert_eq!(s.map(|m| m.bytes()), Some(&[1u8; 48][..]));
    }
}
