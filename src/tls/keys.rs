//! Where a run's TLS secrets come from: key log files given with `--tls-keylog`, and the
//! secrets a pcapng carries in its Decryption Secrets Blocks. One store per run, shared by the
//! thread that reads the capture (which finds the blocks) and the one that decrypts (which
//! looks a connection's secrets up once, when its ServerHello is read).
//!
//! A followed file (`watch`: a client writes `SSLKEYLOGFILE` while the capture runs) is read
//! again from where it was left when a connection's random is not found, at most every
//! [`REREAD_INTERVAL`], so lines appended during the capture are picked up.

use super::keylog::{KeyLog, KeyLogStats, Malformed, Secrets};
use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Shortest time between two reads of a followed file for a random not found.
pub const REREAD_INTERVAL: Duration = Duration::from_millis(20);
/// Most bytes of a followed file read at once (a key log is a few hundred bytes a connection).
const MAX_READ: u64 = 16 * 1024 * 1024;

/// A key log file, read up to `offset`.
#[derive(Debug)]
struct Followed {
    path: PathBuf,
    name: String,
    offset: u64,
    /// Lines read so far, to number malformed ones in the file.
    lines: u64,
}

/// A malformed key log line, where it was.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Report {
    /// The file's name as given, or `NAME: decryption secrets block N` for a pcapng's.
    pub source: String,
    pub malformed: Malformed,
}

impl std::fmt::Display for Report {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{}: line {}: {} (line not used)",
            self.source, self.malformed.line, self.malformed.why
        )
    }
}

#[derive(Debug, Default)]
struct Store {
    log: KeyLog,
    files: Vec<Followed>,
    follow: bool,
    last_read: Option<Instant>,
    /// Decryption Secrets Blocks read, and those of other kinds than a TLS key log.
    embedded: u64,
    embedded_other: u64,
    /// Malformed lines not yet reported, and how many were not kept to be.
    reports: Vec<Report>,
    reports_dropped: u64,
    /// Secrets read from a capture ahead of the frames being analysed (a Decryption Secrets
    /// Block met by the reading thread): their source, and the frame from which they count.
    pending: std::collections::VecDeque<(u64, String, Vec<u8>)>,
    pending_bytes: usize,
}

/// Bytes of pcapng secrets kept waiting for their frame; beyond, the oldest count at once.
const MAX_PENDING: usize = 16 * 1024 * 1024;

impl Store {
    /// Secrets of blocks placed at or before `frame` count from now on.
    fn apply_pending(&mut self, frame: u64) {
        while self.pending.front().is_some_and(|(at, _, _)| *at <= frame)
            || self.pending_bytes > MAX_PENDING
        {
            let Some((_, source, data)) = self.pending.pop_front() else {
                break;
            };
            self.pending_bytes -= data.len();
            self.add(&source, &data, 0);
        }
    }

    /// Reads the lines of `text` (numbered from `first_line` + 1 in reports); how many.
    fn add(&mut self, source: &str, text: &[u8], first_line: u64) -> u64 {
        let before = self.log.stats().lines;
        for m in self.log.add(text) {
            if self.reports.len() < super::keylog::MAX_REPORTED {
                self.reports.push(Report {
                    source: source.to_string(),
                    malformed: Malformed {
                        line: m.line + first_line,
                        why: m.why,
                    },
                });
            } else {
                self.reports_dropped += 1;
            }
        }
        self.log.stats().lines - before
    }

    /// Reads what was appended to each file since last time: whole lines only.
    fn read_files(&mut self) -> Result<(), String> {
        let mut files = std::mem::take(&mut self.files);
        let mut result = Ok(());
        for f in &mut files {
            // A file that became shorter was rotated or truncated: read again from its start.
            if std::fs::metadata(&f.path).is_ok_and(|m| m.len() < f.offset) {
                f.offset = 0;
                f.lines = 0;
            }
            match read_from(&f.path, f.offset) {
                Ok(bytes) => {
                    // Whole lines: up to the last line end (the rest is read when complete).
                    let end = bytes
                        .iter()
                        .rposition(|&b| b == b'\n' || b == b'\r')
                        .map_or(0, |i| i + 1);
                    let (whole, _) = bytes.split_at(end);
                    let name = f.name.clone();
                    f.lines += self.add(&name, whole, f.lines);
                    f.offset += end as u64;
                }
                // A followed key log that does not exist yet is read once the client makes it.
                Err(e) if self.follow && e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => {
                    if result.is_ok() {
                        result = Err(format!("{}: {e}", f.name));
                    }
                }
            }
        }
        self.files = files;
        result
    }
}

/// Reads a file from `offset` to its end (at most [`MAX_READ`] bytes).
fn read_from(path: &Path, offset: u64) -> std::io::Result<Vec<u8>> {
    let mut file = std::fs::File::open(path)?;
    if file.metadata()?.is_dir() {
        return Err(std::io::Error::other("is a directory"));
    }
    file.seek(SeekFrom::Start(offset))?;
    let mut bytes = Vec::new();
    file.take(MAX_READ).read_to_end(&mut bytes)?;
    Ok(bytes)
}

/// The secrets of a run.
#[derive(Debug, Default)]
pub struct KeyStore {
    inner: Mutex<Store>,
    /// Whether secrets are held or may come (asked once per TLS connection, without the
    /// lock).
    any: std::sync::atomic::AtomicBool,
    /// Bytes of records held over all connections while their secrets are awaited, and how
    /// often a record could not be held because of the limit ([`MAX_HELD_TOTAL`]).
    held: std::sync::atomic::AtomicUsize,
    held_limit_hits: std::sync::atomic::AtomicU64,
}

/// Bytes of records held over all connections while their secrets are awaited.
pub const MAX_HELD_TOTAL: usize = 64 * 1024 * 1024;

/// What the store holds and read, for the summary.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct KeyStoreStats {
    /// Key log files given.
    pub files: u64,
    /// Decryption Secrets Blocks read from the captures (TLS key logs), and of other kinds
    /// (not used).
    pub embedded: u64,
    pub embedded_other: u64,
    /// Connections (client randoms) with secrets.
    pub randoms: u64,
    /// Records of connections waiting for their secrets that could not be held: the run's
    /// budget for them was spent (the connection is read on without keys).
    pub held_limit_hits: u64,
    #[serde(flatten)]
    pub lines: KeyLogStats,
}

impl KeyStore {
    /// A store of the key log files `paths`, read now; `follow` reads them again later for
    /// randoms not found (then a file that does not exist yet is not an error: it is read
    /// when it appears). An unreadable file is an error.
    pub fn open(paths: &[PathBuf], follow: bool) -> Result<KeyStore, String> {
        // With no file there is nothing to follow (only a pcapng's own secrets can come).
        let follow = follow && !paths.is_empty();
        let mut store = Store {
            follow,
            ..Store::default()
        };
        for p in paths {
            let name = crate::text::lossless(p.as_os_str().as_encoded_bytes());
            if !follow {
                // Read once, whole: a last line without its line end is a line.
                let text = std::fs::read(p).map_err(|e| format!("{name}: {e}"))?;
                store.add(&name, &text, 0);
            }
            store.files.push(Followed {
                path: p.clone(),
                name,
                offset: 0,
                lines: 0,
            });
        }
        if follow {
            store.read_files()?;
        }
        let any = store.follow || !store.log.is_empty();
        Ok(KeyStore {
            inner: Mutex::new(store),
            any: any.into(),
            ..KeyStore::default()
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Store> {
        // A thread that panicked while holding the lock left a store that is still whole.
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Takes the secrets of a pcapng Decryption Secrets Block (`kind` its secrets type,
    /// `data` its secrets without padding), from capture `source`, at once.
    pub fn add_embedded(&self, source: &str, kind: u32, data: &[u8]) {
        self.add_embedded_at(source, kind, data, 0);
    }

    /// As [`KeyStore::add_embedded`], for a block found before frame `frame` of the capture:
    /// its secrets count for lookups made at that frame or later (the capture may be read
    /// ahead of the frames analysed, on another thread; this keeps the results the same).
    pub fn add_embedded_at(&self, source: &str, kind: u32, data: &[u8], frame: u64) {
        let mut s = self.lock();
        s.embedded += 1;
        if kind != TLS_KEY_LOG {
            s.embedded_other += 1;
            return;
        }
        let name = format!("{source}: decryption secrets block {}", s.embedded);
        s.pending_bytes += data.len();
        s.pending.push_back((frame, name, data.to_vec()));
        // A block before the first frame counts at once.
        s.apply_pending(frame.min(1));
        self.any.store(true, std::sync::atomic::Ordering::Release);
    }

    /// A capture was read to its end: all its secrets count.
    pub fn apply_pending(&self) {
        self.lock().apply_pending(u64::MAX);
    }

    /// The secrets logged for the connection whose ClientHello random is `random`.
    pub fn lookup(&self, random: &[u8; 32]) -> Option<Secrets> {
        self.find(random, false, u64::MAX)
    }

    /// As [`KeyStore::lookup`], asked at frame `frame` of the capture being analysed (a
    /// pcapng's secrets count from where they are in it).
    pub fn lookup_at(&self, random: &[u8; 32], frame: u64) -> Option<Secrets> {
        self.find(random, false, frame)
    }

    /// As [`KeyStore::lookup_at`], reading followed files again whenever they are (a
    /// connection ending, or its handshake finished without the application secrets: a last
    /// chance).
    pub fn lookup_now(&self, random: &[u8; 32], frame: u64) -> Option<Secrets> {
        self.find(random, true, frame)
    }

    fn find(&self, random: &[u8; 32], now: bool, frame: u64) -> Option<Secrets> {
        let mut s = self.lock();
        if !s.pending.is_empty() {
            s.apply_pending(frame);
        }
        if let Some(found) = s.log.get(random).filter(|f| !now || f.is_complete()) {
            return Some(found.clone());
        }
        if s.follow && (now || s.last_read.is_none_or(|t| t.elapsed() >= REREAD_INTERVAL)) {
            s.last_read = Some(Instant::now());
            // A file that went away since is said when the run ends (its secrets stay).
            let _ = s.read_files();
        }
        s.log.get(random).cloned()
    }

    /// The key log lines of the connections whose ClientHello randoms are `randoms` (those
    /// the store has secrets for), to write out when the user asks (`extract --with-keys`).
    pub fn key_log_of(&self, randoms: &[[u8; 32]]) -> Vec<u8> {
        let hex = |b: &[u8]| b.iter().map(|x| format!("{x:02x}")).collect::<String>();
        let s = self.lock();
        let mut out = String::new();
        for r in randoms {
            let Some(secrets) = s.log.get(r) else {
                continue;
            };
            let lines = [
                ("CLIENT_RANDOM", &secrets.master),
                ("CLIENT_EARLY_TRAFFIC_SECRET", &secrets.client_early),
                ("CLIENT_HANDSHAKE_TRAFFIC_SECRET", &secrets.client_handshake),
                ("SERVER_HANDSHAKE_TRAFFIC_SECRET", &secrets.server_handshake),
                ("CLIENT_TRAFFIC_SECRET_0", &secrets.client_traffic),
                ("SERVER_TRAFFIC_SECRET_0", &secrets.server_traffic),
            ];
            for (label, secret) in lines {
                if let Some(secret) = secret {
                    out.push_str(&format!("{label} {} {}\n", hex(r), hex(secret.bytes())));
                }
            }
        }
        out.into_bytes()
    }

    /// Reserves `n` bytes of the run's budget for held records; false (counted) when it is
    /// spent.
    pub fn hold(&self, n: usize) -> bool {
        use std::sync::atomic::Ordering;
        let ok = self
            .held
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |h| {
                (h + n <= MAX_HELD_TOTAL).then_some(h + n)
            })
            .is_ok();
        if !ok {
            self.held_limit_hits.fetch_add(1, Ordering::Relaxed);
        }
        ok
    }

    /// Gives back `n` bytes reserved by [`KeyStore::hold`].
    pub fn release(&self, n: usize) {
        use std::sync::atomic::Ordering;
        let _ = self
            .held
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |h| {
                Some(h.saturating_sub(n))
            });
    }

    /// Whether secrets may still come: files are followed.
    pub fn follows(&self) -> bool {
        self.lock().follow
    }

    /// Whether any secret is known, or may become known (a followed file).
    pub fn has_any(&self) -> bool {
        self.any.load(std::sync::atomic::Ordering::Acquire)
    }

    /// Malformed lines found since the last call (and how many more were not kept).
    pub fn take_reports(&self) -> (Vec<Report>, u64) {
        let mut s = self.lock();
        let dropped = std::mem::take(&mut s.reports_dropped);
        (std::mem::take(&mut s.reports), dropped)
    }

    pub fn stats(&self) -> KeyStoreStats {
        let s = self.lock();
        KeyStoreStats {
            files: s.files.len() as u64,
            embedded: s.embedded - s.embedded_other,
            embedded_other: s.embedded_other,
            randoms: s.log.len() as u64,
            held_limit_hits: self
                .held_limit_hits
                .load(std::sync::atomic::Ordering::Relaxed),
            lines: s.log.stats(),
        }
    }
}

/// The secrets type of a Decryption Secrets Block holding a TLS key log ("TLSK").
pub const TLS_KEY_LOG: u32 = 0x544c_534b;

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    const LINE: &str = "CLIENT_RANDOM 0101010101010101010101010101010101010101010101010101010101010101 \
        000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000";

    #[test]
    fn a_followed_file_is_read_again_for_a_random_not_found() {
        let dir = std::env::temp_dir().join(format!("capdiag-keys-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("keys");
        std::fs::write(&path, "# start\nnot-a-line\n").unwrap();
        let store = KeyStore::open(std::slice::from_ref(&path), true).unwrap();
        let (reports, _) = store.take_reports();
        assert_eq!(reports.len(), 1);
        assert_eq!(reports[0].malformed.line, 2);
        assert!(!reports[0].to_string().contains("not-a-line"));
        assert!(store.lookup(&[1; 32]).is_none());
        // Half a line, then the rest: read once whole.
        let mut f = std::fs::OpenOptions::new()
            .append(true)
            .open(&path)
            .unwrap();
        let (a, b) = LINE.split_at(40);
        f.write_all(a.as_bytes()).unwrap();
        std::thread::sleep(REREAD_INTERVAL);
        assert!(store.lookup(&[1; 32]).is_none());
        f.write_all(format!("{b}\nbad\n").as_bytes()).unwrap();
        std::thread::sleep(REREAD_INTERVAL);
        assert!(store.lookup(&[1; 32]).is_some_and(|s| s.master.is_some()));
        let (reports, _) = store.take_reports();
        assert_eq!(reports[0].malformed.line, 4);
        assert_eq!(store.stats().randoms, 1);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn embedded_secrets_and_unreadable_files() {
        let store = KeyStore::default();
        store.add_embedded("a.pcapng", TLS_KEY_LOG, LINE.as_bytes());
        store.add_embedded("a.pcapng", 0x5753_4b4c, b"wireguard");
        assert!(store.lookup(&[1; 32]).is_some());
        let st = store.stats();
        assert_eq!((st.embedded, st.embedded_other), (1, 1));
        let err = KeyStore::open(&[PathBuf::from("/nonexistent/keys")], false).unwrap_err();
        assert!(err.starts_with("/nonexistent/keys: "));
    }
}
