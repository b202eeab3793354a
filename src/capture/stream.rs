//! A capture arriving through a pipe from a live capture (`tcpdump -U -w - | capdiag watch -r -`):
//! input that may go quiet without ending.
//!
//! Reading a file, capdiag's clock is the capture's: time moves on with each frame. When the
//! frames come from a live capture through a pipe and the traffic stops, no frame comes to move
//! it, and a finding that waits out a delay would wait until the next packet or the end of the
//! input. [`Pausable`] lets the reader notice the silence: once pauses are allowed
//! ([`PauseState::allow`]), a read that finds no byte within the wait returns
//! `ErrorKind::WouldBlock` and marks the pause, and the capture reader reports
//! [`ReadEnd::Paused`](super::file::ReadEnd::Paused) with nothing lost; reading resumes where it
//! was when called again. A regular file is always readable, so it never pauses.

use std::fs::File;
use std::io::{self, Read};
use std::os::fd::{AsFd, OwnedFd};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

/// What the reader of a [`Pausable`] input and its owner share.
#[derive(Debug, Default)]
pub struct PauseState {
    /// How long a read waits for a byte before pausing (ms); 0: reads block as usual.
    wait_ms: AtomicU64,
    /// A read paused since this was last taken.
    paused: AtomicBool,
    /// Readable when the owner wants a waiting read to return at once (a stop was asked for).
    wake: Mutex<Option<OwnedFd>>,
}

impl PauseState {
    /// From now on a read that finds no byte within `wait_ms` (or as soon as `wake` becomes
    /// readable) pauses instead of blocking.
    pub fn allow(&self, wait_ms: u64, wake: Option<OwnedFd>) {
        if let Ok(mut w) = self.wake.lock() {
            *w = wake;
        }
        self.wait_ms.store(wait_ms.max(1), Ordering::SeqCst);
    }

    /// Whether a read paused since the last call (and forgets it).
    pub fn take_paused(&self) -> bool {
        self.paused.swap(false, Ordering::SeqCst)
    }
}

/// A file or standard input read without a user-space buffer (so that "nothing to read" is
/// what the kernel says), able to pause.
#[derive(Debug)]
pub struct Pausable {
    file: File,
    state: Arc<PauseState>,
}

impl Pausable {
    pub fn new(file: File) -> Pausable {
        Pausable {
            file,
            state: Arc::default(),
        }
    }

    /// Standard input, read from its file descriptor directly (a duplicate of it).
    pub fn stdin() -> io::Result<Pausable> {
        let fd = io::stdin().as_fd().try_clone_to_owned()?;
        Ok(Pausable::new(File::from(fd)))
    }

    pub fn state(&self) -> Arc<PauseState> {
        Arc::clone(&self.state)
    }

    /// Whether a byte (or the end) can be read now, waiting up to the state's wait; false
    /// also when the wake descriptor became readable or a signal interrupted the wait.
    fn ready(&self, wait_ms: u64) -> bool {
        use rustix::event::{PollFd, PollFlags, Timespec, poll};
        let timeout = Timespec {
            tv_sec: (wait_ms / 1000) as i64,
            tv_nsec: ((wait_ms % 1000) * 1_000_000) as i64,
        };
        let wake = self.state.wake.lock().ok();
        let wake_fd = wake.as_ref().and_then(|w| w.as_ref());
        let mut fds = Vec::with_capacity(2);
        fds.push(PollFd::new(&self.file, PollFlags::IN));
        if let Some(w) = wake_fd {
            fds.push(PollFd::new(w, PollFlags::IN));
        }
        match poll(&mut fds, Some(&timeout)) {
            // Readable, at its end (HUP) or in error: the read says which.
            Ok(_) => fds.first().is_some_and(|f| !f.revents().is_empty()),
            Err(_) => false,
        }
    }
}

impl Read for Pausable {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let wait_ms = self.state.wait_ms.load(Ordering::SeqCst);
        if wait_ms > 0 && !buf.is_empty() && !self.ready(wait_ms) {
            self.state.paused.store(true, Ordering::SeqCst);
            return Err(io::ErrorKind::WouldBlock.into());
        }
        self.file.read(buf)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    #[test]
    fn a_quiet_pipe_pauses_and_loses_nothing() {
        let (rx, mut tx) = io::pipe().expect("pipe");
        let mut p = Pausable::new(File::from(OwnedFd::from(rx)));
        let state = p.state();
        tx.write_all(b"ab").expect("write");
        let mut buf = [0u8; 8];
        // Pauses not allowed yet: reads as any file.
        assert_eq!(p.read(&mut buf).expect("read"), 2);
        state.allow(20, None);
        let e = p.read(&mut buf).expect_err("nothing to read");
        assert_eq!(e.kind(), io::ErrorKind::WouldBlock);
        assert!(state.take_paused());
        assert!(!state.take_paused(), "taken once");
        tx.write_all(b"cd").expect("write");
        assert_eq!(p.read(&mut buf).expect("read"), 2);
        assert_eq!(&buf[..2], b"cd");
        drop(tx);
        assert_eq!(p.read(&mut buf).expect("end"), 0, "the end is not a pause");
        assert!(!state.take_paused());
    }

    #[test]
    fn a_wake_ends_the_wait_at_once() {
        let (rx, _tx) = io::pipe().expect("pipe");
        let (wake_rx, mut wake_tx) = io::pipe().expect("pipe");
        let mut p = Pausable::new(File::from(OwnedFd::from(rx)));
        p.state().allow(60_000, Some(OwnedFd::from(wake_rx)));
        wake_tx.write_all(b"s").expect("write");
        let t = std::time::Instant::now();
        let e = p.read(&mut [0u8; 4]).expect_err("woken");
        assert_eq!(e.kind(), io::ErrorKind::WouldBlock);
        assert!(t.elapsed() < std::time::Duration::from_secs(10));
    }
}
