//! Record protection with known secrets: the cipher suites capdiag decrypts, the key schedules
//! that turn a key log's secrets into keys (TLS 1.2's PRF, RFC 5246 §5 and §6.3; TLS 1.3's
//! HKDF-Expand-Label, RFC 8446 §7.1 and §7.3), and opening one record (RFC 5288 §3 and
//! RFC 7905 §2 for TLS 1.2; RFC 8446 §5.2-5.3 for TLS 1.3). The primitives are RustCrypto's
//! (aes-gcm, chacha20poly1305, hkdf, hmac, sha2); what is written here is only how TLS puts
//! them together: nonces, additional data, sequence numbers, the inner plaintext's padding.

use aes_gcm::aead::AeadInOut;
use aes_gcm::{Aes128Gcm, Aes256Gcm, KeyInit};
use chacha20poly1305::ChaCha20Poly1305;
use hmac::{Hmac, Mac};
use sha2::{Sha256, Sha384};

/// Bytes of an AEAD tag (all the suites here).
const TAG: usize = 16;
/// Bytes of TLS 1.2 AES-GCM's explicit nonce, carried in each record.
const EXPLICIT_NONCE: usize = 8;

/// The hash of a suite's PRF or HKDF.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Hash {
    Sha256,
    Sha384,
}

impl Hash {
    /// Bytes of its output (and of a TLS 1.3 secret).
    pub fn output_len(self) -> usize {
        match self {
            Hash::Sha256 => 32,
            Hash::Sha384 => 48,
        }
    }
}

/// The AEAD of a suite.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Cipher {
    Aes128Gcm,
    Aes256Gcm,
    ChaCha20Poly1305,
}

impl Cipher {
    fn key_len(self) -> usize {
        match self {
            Cipher::Aes128Gcm => 16,
            Cipher::Aes256Gcm | Cipher::ChaCha20Poly1305 => 32,
        }
    }
}

/// A cipher suite capdiag decrypts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Suite {
    pub id: u16,
    pub cipher: Cipher,
    pub hash: Hash,
    /// A TLS 1.3 suite (`TLS_AES_128_GCM_SHA256` ...): secrets from HKDF, no explicit nonce.
    pub tls13: bool,
}

impl Suite {
    /// The suite `id` chosen by a ServerHello of version `version`, when capdiag decrypts it
    /// there (a TLS 1.3 suite with TLS 1.3, a TLS 1.2 one with TLS 1.2).
    pub fn chosen(id: u16, version: u16) -> Option<Suite> {
        Suite::of(id).filter(|s| s.tls13 == (version >= 0x0304))
    }

    /// The suite `id`, when it is one capdiag decrypts: TLS 1.3's AES-GCM and ChaCha20-Poly1305
    /// suites, and TLS 1.2's AEAD suites with (EC)DHE or RSA key exchange.
    pub fn of(id: u16) -> Option<Suite> {
        use Cipher::*;
        use Hash::*;
        let (cipher, hash, tls13) = match id {
            0x1301 => (Aes128Gcm, Sha256, true),
            0x1302 => (Aes256Gcm, Sha384, true),
            0x1303 => (ChaCha20Poly1305, Sha256, true),
            // RSA, DHE-RSA, ECDHE-ECDSA, ECDHE-RSA with AES-GCM (RFC 5288, RFC 5289).
            0x009c | 0x009e | 0xc02b | 0xc02f => (Aes128Gcm, Sha256, false),
            0x009d | 0x009f | 0xc02c | 0xc030 => (Aes256Gcm, Sha384, false),
            // ECDHE-RSA, ECDHE-ECDSA, DHE-RSA with ChaCha20-Poly1305 (RFC 7905).
            0xcca8..=0xccaa => (ChaCha20Poly1305, Sha256, false),
            _ => return None,
        };
        Some(Suite {
            id,
            cipher,
            hash,
            tls13,
        })
    }
}

/// Why a suite is not decrypted with version `version`, in words for the summary (`CBC`,
/// `CCM` ...).
pub fn unsupported_kind(id: u16, version: u16) -> &'static str {
    if Suite::of(id).is_some() && Suite::chosen(id, version).is_none() {
        return "a suite of another TLS version than the one chosen";
    }
    match id {
        0x1304 | 0x1305 | 0xc09c..=0xc0af => "AES-CCM",
        0x0000..=0x00ff | 0xc001..=0xc02a | 0xc031..=0xc03f => "CBC, RC4 or NULL",
        _ => "not supported",
    }
}

/// An AEAD keyed for one direction.
enum Aead {
    Aes128(Box<Aes128Gcm>),
    Aes256(Box<Aes256Gcm>),
    ChaCha(Box<ChaCha20Poly1305>),
}

impl Aead {
    fn new(cipher: Cipher, key: &[u8]) -> Option<Aead> {
        Some(match cipher {
            Cipher::Aes128Gcm => Aead::Aes128(Box::new(Aes128Gcm::new_from_slice(key).ok()?)),
            Cipher::Aes256Gcm => Aead::Aes256(Box::new(Aes256Gcm::new_from_slice(key).ok()?)),
            Cipher::ChaCha20Poly1305 => {
                Aead::ChaCha(Box::new(ChaCha20Poly1305::new_from_slice(key).ok()?))
            }
        })
    }

    /// Decrypts `buf` in place; false when the tag does not authenticate it.
    fn open(&self, nonce: &[u8; 12], aad: &[u8], buf: &mut [u8], tag: &[u8; TAG]) -> bool {
        let nonce = (*nonce).into();
        let tag = (*tag).into();
        match self {
            Aead::Aes128(a) => a.decrypt_inout_detached(&nonce, aad, buf.into(), &tag),
            Aead::Aes256(a) => a.decrypt_inout_detached(&nonce, aad, buf.into(), &tag),
            Aead::ChaCha(a) => a.decrypt_inout_detached(&nonce, aad, buf.into(), &tag),
        }
        .is_ok()
    }
}

impl std::fmt::Debug for Aead {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Aead")
    }
}

/// A record decrypted: its real content type and where its content lies in the buffer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Opened {
    pub content_type: u8,
    pub start: usize,
    pub end: usize,
}

/// Why a record could not be opened.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OpenError {
    /// Shorter than a tag (and an explicit nonce).
    TooShort,
    /// The tag did not authenticate it: a wrong key, or records out of step.
    Tag,
    /// A TLS 1.3 inner plaintext of padding only.
    NoContentType,
}

/// One direction's record protection: its AEAD key, IV and sequence number. Its `Debug`
/// shows the sequence number only.
pub struct Protection {
    aead: Aead,
    /// TLS 1.3 and ChaCha20: the 12-byte IV; TLS 1.2 AES-GCM: the 4-byte salt, then zeros.
    iv: [u8; 12],
    seq: u64,
    tls13: bool,
    /// TLS 1.2 AES-GCM: the nonce's last 8 bytes are carried in the record.
    explicit_nonce: bool,
}

impl std::fmt::Debug for Protection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Protection")
            .field("seq", &self.seq)
            .finish_non_exhaustive()
    }
}

impl Protection {
    /// TLS 1.3 protection from a traffic secret (`key` and `iv` by HKDF-Expand-Label).
    pub fn tls13(suite: Suite, secret: &[u8]) -> Option<Protection> {
        let key = expand_label(suite.hash, secret, b"key", suite.cipher.key_len())?;
        let iv = expand_label(suite.hash, secret, b"iv", 12)?;
        Some(Protection {
            aead: Aead::new(suite.cipher, &key)?,
            iv: iv.as_slice().try_into().ok()?,
            seq: 0,
            tls13: true,
            explicit_nonce: false,
        })
    }

    fn tls12(suite: Suite, key: &[u8], iv: &[u8]) -> Option<Protection> {
        let mut full = [0u8; 12];
        full.get_mut(..iv.len())?.copy_from_slice(iv);
        Some(Protection {
            aead: Aead::new(suite.cipher, key)?,
            iv: full,
            seq: 0,
            tls13: false,
            explicit_nonce: suite.cipher != Cipher::ChaCha20Poly1305,
        })
    }

    /// Records opened with this protection so far.
    pub fn seq(&self) -> u64 {
        self.seq
    }

    /// Opens the record whose header is `header` (type, version, length) and whose body is
    /// `body`, in place. The sequence number moves on only when it opened.
    pub fn open(&mut self, header: [u8; 5], body: &mut [u8]) -> Result<Opened, OpenError> {
        let explicit = if self.explicit_nonce {
            EXPLICIT_NONCE
        } else {
            0
        };
        let len = body.len();
        if len < explicit + TAG {
            return Err(OpenError::TooShort);
        }
        let (head, tail) = body.split_at_mut(len - TAG);
        let tag: [u8; TAG] = (&*tail).try_into().map_err(|_| OpenError::TooShort)?;
        let (nonce_part, text) = head.split_at_mut(explicit);
        let mut nonce = self.iv;
        if self.explicit_nonce {
            // TLS 1.2 AES-GCM: salt ‖ the record's explicit nonce.
            if let Some(dst) = nonce.get_mut(4..) {
                dst.copy_from_slice(nonce_part);
            }
        } else {
            // TLS 1.3, and TLS 1.2 ChaCha20-Poly1305: IV XOR the sequence number.
            for (n, s) in nonce.iter_mut().skip(4).zip(self.seq.to_be_bytes()) {
                *n ^= s;
            }
        }
        let ok = if self.tls13 {
            self.aead.open(&nonce, &header, text, &tag)
        } else {
            let [t, v0, v1, ..] = header;
            let plain_len = u16::try_from(text.len()).unwrap_or(u16::MAX).to_be_bytes();
            let mut aad = [0u8; 13];
            let (seq, rest) = aad.split_at_mut(8);
            seq.copy_from_slice(&self.seq.to_be_bytes());
            rest.copy_from_slice(&[t, v0, v1, plain_len[0], plain_len[1]]);
            self.aead.open(&nonce, &aad, text, &tag)
        };
        if !ok {
            return Err(OpenError::Tag);
        }
        self.seq = self.seq.wrapping_add(1);
        if !self.tls13 {
            return Ok(Opened {
                content_type: header[0],
                start: explicit,
                end: len - TAG,
            });
        }
        // TLS 1.3 inner plaintext: content ‖ type ‖ zeros.
        let Some(at) = text.iter().rposition(|&b| b != 0) else {
            return Err(OpenError::NoContentType);
        };
        Ok(Opened {
            content_type: text.get(at).copied().unwrap_or(0),
            start: 0,
            end: at,
        })
    }
}

/// HMAC of `parts` (concatenated) under `key`.
fn hmac(hash: Hash, key: &[u8], parts: &[&[u8]], out: &mut Vec<u8>) -> Option<()> {
    match hash {
        Hash::Sha256 => {
            let mut m = <Hmac<Sha256> as KeyInit>::new_from_slice(key).ok()?;
            parts.iter().for_each(|p| m.update(p));
            out.extend_from_slice(&m.finalize().into_bytes());
        }
        Hash::Sha384 => {
            let mut m = <Hmac<Sha384> as KeyInit>::new_from_slice(key).ok()?;
            parts.iter().for_each(|p| m.update(p));
            out.extend_from_slice(&m.finalize().into_bytes());
        }
    }
    Some(())
}

/// TLS 1.2's PRF (RFC 5246 §5): `P_hash(secret, label ‖ seed)`, `n` bytes.
pub fn prf(hash: Hash, secret: &[u8], label: &[u8], seed: &[&[u8]], n: usize) -> Option<Vec<u8>> {
    let mut a: Vec<u8> = Vec::new();
    let mut x = Vec::new();
    let mut out = Vec::with_capacity(n + hash.output_len());
    // A(1) = HMAC(secret, label ‖ seed).
    let mut first: Vec<&[u8]> = vec![label];
    first.extend_from_slice(seed);
    hmac(hash, secret, &first, &mut a)?;
    while out.len() < n {
        let mut parts: Vec<&[u8]> = vec![&a, label];
        parts.extend_from_slice(seed);
        hmac(hash, secret, &parts, &mut out)?;
        x.clear();
        hmac(hash, secret, &[&a], &mut x)?;
        std::mem::swap(&mut a, &mut x);
    }
    out.truncate(n);
    Some(out)
}

/// The two directions' protections of a TLS 1.2 connection from its master secret
/// (client's, server's; RFC 5246 §6.3: `key_block = PRF(master, "key expansion",
/// server_random ‖ client_random)`, AEAD suites have no MAC keys).
pub fn tls12_keys(
    suite: Suite,
    master: &[u8],
    client_random: &[u8; 32],
    server_random: &[u8; 32],
) -> Option<(Protection, Protection)> {
    let key_len = suite.cipher.key_len();
    let iv_len = if suite.cipher == Cipher::ChaCha20Poly1305 {
        12
    } else {
        4
    };
    let block = prf(
        suite.hash,
        master,
        b"key expansion",
        &[server_random, client_random],
        2 * (key_len + iv_len),
    )?;
    let (keys, ivs) = block.split_at(2 * key_len);
    let (ck, sk) = keys.split_at(key_len);
    let (civ, siv) = ivs.split_at(iv_len);
    Some((
        Protection::tls12(suite, ck, civ)?,
        Protection::tls12(suite, sk, siv)?,
    ))
}

/// HKDF-Expand-Label (RFC 8446 §7.1) with an empty context.
pub fn expand_label(hash: Hash, secret: &[u8], label: &[u8], n: usize) -> Option<Vec<u8>> {
    let len = u16::try_from(n).ok()?.to_be_bytes();
    let label_len = [u8::try_from(6 + label.len()).ok()?];
    let info: [&[u8]; 5] = [&len, &label_len, b"tls13 ", label, &[0]];
    let mut out = vec![0u8; n];
    match hash {
        Hash::Sha256 => hkdf::Hkdf::<Sha256>::from_prk(secret)
            .ok()?
            .expand_multi_info(&info, &mut out)
            .ok()?,
        Hash::Sha384 => hkdf::Hkdf::<Sha384>::from_prk(secret)
            .ok()?
            .expand_multi_info(&info, &mut out)
            .ok()?,
    }
    Some(out)
}

/// The next traffic secret after a KeyUpdate (RFC 8446 §7.2).
pub fn next_secret(hash: Hash, secret: &[u8]) -> Option<Vec<u8>> {
    expand_label(hash, secret, b"traffic upd", hash.output_len())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hex(s: &str) -> Vec<u8> {
        (0..s.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
            .collect()
    }

    #[test]
    fn tls13_keys_from_rfc8448() {
        // RFC 8448 §3 (simple 1-RTT handshake): the server's handshake traffic secret and the
        // key and IV derived from it.
        let secret = hex("b67b7d690cc16c4e75e54213cb2d37b4e9c912bcded9105d42befd59d391ad38");
        assert_eq!(
            expand_label(Hash::Sha256, &secret, b"key", 16).unwrap(),
            hex("3fce516009c21727d0f2e4e86ee403bc")
        );
        assert_eq!(
            expand_label(Hash::Sha256, &secret, b"iv", 12).unwrap(),
            hex("5d313eb2671276ee13000b30")
        );
    }

    #[test]
    fn tls13_inner_plaintext_padding_and_type() {
        // A record sealed as TLS 1.3 does it (nonce = IV XOR sequence, AAD = the header),
        // content ‖ type ‖ zero padding: opened in place, the type and content come back, and
        // the second record needs the next sequence number.
        let suite = Suite::of(0x1303).unwrap();
        let secret = [9u8; 32];
        let key = expand_label(Hash::Sha256, &secret, b"key", 32).unwrap();
        let iv = expand_label(Hash::Sha256, &secret, b"iv", 12).unwrap();
        let seal = |seq: u64, inner: &[u8]| {
            let mut nonce: [u8; 12] = iv.as_slice().try_into().unwrap();
            for (n, s) in nonce.iter_mut().skip(4).zip(seq.to_be_bytes()) {
                *n ^= s;
            }
            let len = (inner.len() + TAG) as u16;
            let header = [23, 3, 3, (len >> 8) as u8, len as u8];
            let mut buf = inner.to_vec();
            let tag = ChaCha20Poly1305::new_from_slice(&key)
                .unwrap()
                .encrypt_inout_detached(&nonce.into(), &header, buf.as_mut_slice().into())
                .unwrap();
            buf.extend_from_slice(&tag);
            (header, buf)
        };
        let mut p = Protection::tls13(suite, &secret).unwrap();
        let (h, mut b) = seal(0, b"GET / HTTP/1.1\r\n\r\n\x17\0\0\0");
        let o = p.open(h, &mut b).unwrap();
        assert_eq!(o.content_type, 23);
        assert_eq!(&b[o.start..o.end], b"GET / HTTP/1.1\r\n\r\n");
        let (h, mut b) = seal(1, b"\x01\x00\x15");
        let o = p.open(h, &mut b).unwrap();
        assert_eq!((o.content_type, &b[o.start..o.end]), (21, &[1u8, 0][..]));
        let (h, mut b) = seal(5, b"x\x17");
        assert_eq!(p.open(h, &mut b), Err(OpenError::Tag));
        let (h, mut b) = seal(2, b"\0\0");
        assert_eq!(p.open(h, &mut b), Err(OpenError::NoContentType));
    }

    #[test]
    fn tls12_prf_vector() {
        // The TLS 1.2 PRF (SHA-256) test vector published with the IETF TLS list
        // (secret, label "test label", seed): the first 100 bytes.
        let out = prf(
            Hash::Sha256,
            &hex("9bbe436ba940f017b17652849a71db35"),
            b"test label",
            &[&hex("a0ba9f936cda311827a6f796ffd5198c")],
            100,
        )
        .unwrap();
        assert_eq!(
            out,
            hex(concat!(
                "e3f229ba727be17b8d122620557cd453c2aab21d07c3d495329b52d4e61edb5a6b301791e90d35c9c9a46b4e14baf9af",
                "0fa022f7077def17abfd3797c0564bab4fbc91666e9def9b97fce34f796789baa48082d122ee42c5a72e5a5110fff701",
                "87347b66"
            ))
        );
    }

    #[test]
    fn a_changed_byte_fails_the_tag_and_keeps_the_sequence() {
        let suite = Suite::of(0x1301).unwrap();
        let secret = [7u8; 32];
        let mut p = Protection::tls13(suite, &secret).unwrap();
        let mut body = [0u8; 40];
        assert_eq!(p.open([23, 3, 3, 0, 40], &mut body), Err(OpenError::Tag));
        assert_eq!(p.seq(), 0);
        assert_eq!(
            p.open([23, 3, 3, 0, 4], &mut [0; 4]),
            Err(OpenError::TooShort)
        );
    }

    #[test]
    fn suites() {
        assert_eq!(Suite::of(0x1302).unwrap().hash, Hash::Sha384);
        assert_eq!(Suite::of(0xcca8).unwrap().cipher, Cipher::ChaCha20Poly1305);
        assert!(Suite::of(0xc013).is_none());
        assert_eq!(unsupported_kind(0xc013, 0x0303), "CBC, RC4 or NULL");
        assert_eq!(unsupported_kind(0x1304, 0x0304), "AES-CCM");
        assert_eq!(
            unsupported_kind(0x1301, 0x0303),
            "a suite of another TLS version than the one chosen"
        );
    }
}
