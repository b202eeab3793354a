//! Live capture through libpcap: a large buffer of variable-size slots, `-i any` as Linux
//! cooked v2, errors a person can act on, and a handle that stops a blocked read at once.
//!
//! Not immediate mode: on Linux, libpcap's immediate mode is TPACKET_V2, a ring of fixed-size
//! slots each as large as the snap length (256 KiB by default on an interface with offloads, a
//! veth or any NIC doing GRO), so a 64 MiB buffer holds 256 packets, a few milliseconds of a busy
//! link. Without it libpcap uses TPACKET_V3 as tcpdump does: packets packed one after the other
//! into blocks, the same buffer holding hundreds of thousands of small packets. The kernel hands
//! a block over when it is full or when the read timeout ([`LiveOptions::timeout_ms`]) has
//! passed since it was opened, so a packet waits at most that long (docs/watch.md, "Drops").

use super::{Frame, LinkType};
use std::path::Path;

/// Why a live capture could not start.
#[derive(Debug, thiserror::Error)]
pub enum LiveError {
    #[error(
        "capturing on {iface} needs privileges: run as root, or give the binary the capability once with `sudo setcap cap_net_raw=eip {exe}` (in a container: add the NET_RAW capability; Docker and Kubernetes give added capabilities to root only, so run the capture as user 0 there)"
    )]
    Permission { iface: String, exe: String },
    #[error("no interface named '{iface}'; interfaces: {known}")]
    NoSuchInterface { iface: String, known: String },
    #[error("capture filter '{filter}' is not valid: {reason}")]
    BadFilter { filter: String, reason: String },
    #[error("cannot write {path}: {reason}")]
    Savefile { path: String, reason: String },
    #[error("cannot capture on {iface}: {reason}")]
    Other { iface: String, reason: String },
}

/// Settings of a live capture.
#[derive(Clone, Debug)]
pub struct LiveOptions {
    pub interface: String,
    pub filter: Option<String>,
    pub snaplen: i32,
    /// Kernel buffer, bytes.
    pub buffer: i32,
    /// Read timeout, milliseconds: the longest a captured packet waits in a partly filled
    /// block before the kernel hands the block over.
    pub timeout_ms: i32,
}

/// What a read returned.
pub enum Read {
    Frame,
    /// Nothing arrived within the read timeout.
    Idle,
    /// `breakloop` was called (a signal, the duration ran out).
    Stopped,
    Failed(String),
}

/// Kernel counters of a live capture.
#[derive(Clone, Copy, Debug, Default, serde::Serialize)]
pub struct LiveStats {
    pub received: u64,
    pub dropped_by_kernel: u64,
    pub dropped_by_interface: u64,
}

pub struct LiveCapture {
    /// Non-blocking: reads return at once, and [`LiveCapture::wait`] polls the descriptor, so an
    /// idle interface never blocks the loop (a libpcap read timeout can block indefinitely on
    /// Linux with TPACKET_V3).
    cap: pcap::Capture<pcap::Active>,
    link: LinkType,
    save: Option<pcap::Savefile>,
}

/// `eth0 (description) [up, running]` for every interface libpcap can capture on.
pub fn list_interfaces() -> Result<Vec<String>, String> {
    let devs = pcap::Device::list().map_err(|e| e.to_string())?;
    Ok(devs
        .into_iter()
        .map(|d| match d.desc {
            Some(desc) => format!("{} ({desc})", d.name),
            None => d.name,
        })
        .collect())
}

fn exe() -> String {
    std::env::current_exe()
        .map(|p| p.display().to_string())
        .unwrap_or_else(|_| "capdiag".into())
}

fn classify(iface: &str, e: &pcap::Error) -> LiveError {
    let msg = e.to_string();
    let lower = msg.to_ascii_lowercase();
    if lower.contains("permission") || lower.contains("operation not permitted") {
        return LiveError::Permission {
            iface: iface.into(),
            exe: exe(),
        };
    }
    if lower.contains("no such device")
        || lower.contains("doesn't exist")
        || lower.contains("no such interface")
    {
        let known = pcap::Device::list()
            .map(|d| d.into_iter().map(|d| d.name).collect::<Vec<_>>().join(", "))
            .unwrap_or_default();
        return LiveError::NoSuchInterface {
            iface: iface.into(),
            known,
        };
    }
    LiveError::Other {
        iface: iface.into(),
        reason: msg,
    }
}

impl LiveCapture {
    pub fn open(o: &LiveOptions, write_to: Option<&Path>) -> Result<LiveCapture, LiveError> {
        let inactive = pcap::Capture::from_device(o.interface.as_str())
            .map_err(|e| classify(&o.interface, &e))?;
        let mut cap = inactive
            .immediate_mode(false)
            .buffer_size(o.buffer)
            .snaplen(o.snaplen)
            .timeout(o.timeout_ms)
            .promisc(false)
            .open()
            .map_err(|e| classify(&o.interface, &e))?
            .setnonblock()
            .map_err(|e| classify(&o.interface, &e))?;
        if o.interface == "any" {
            // What `tcpdump -i any` writes today; libpcap's default for "any" is still v1.
            let _ = cap.set_datalink(pcap::Linktype(LinkType::LINUX_SLL2.0 as i32));
        }
        if let Some(f) = &o.filter {
            cap.filter(f, true).map_err(|e| LiveError::BadFilter {
                filter: f.clone(),
                reason: e.to_string(),
            })?;
        }
        let link = LinkType(cap.get_datalink().0 as u32);
        let save = match write_to {
            Some(p) => Some(cap.savefile(p).map_err(|e| LiveError::Savefile {
                path: crate::text::lossless(p.as_os_str().as_encoded_bytes()),
                reason: e.to_string(),
            })?),
            None => None,
        };
        Ok(LiveCapture { cap, link, save })
    }

    pub fn link_type(&self) -> LinkType {
        self.link
    }

    /// Reads one frame and hands it to `f` (after writing it to the `-w` file).
    pub fn read(&mut self, number: u64, f: &mut dyn FnMut(&Frame<'_>)) -> Read {
        match self.cap.next_packet() {
            Ok(p) => {
                if let Some(s) = self.save.as_mut() {
                    s.write(&p);
                }
                // time_t and suseconds_t are not i64 on every platform.
                #[allow(clippy::useless_conversion)]
                let ts = i64::from(p.header.ts.tv_sec) * 1_000_000_000
                    + i64::from(p.header.ts.tv_usec) * 1000;
                f(&Frame {
                    number,
                    ts,
                    link_type: self.link,
                    wire_len: p.header.len,
                    data: p.data,
                });
                Read::Frame
            }
            Err(pcap::Error::TimeoutExpired) => Read::Idle,
            Err(pcap::Error::NoMorePackets) => Read::Stopped,
            Err(pcap::Error::PcapError(m)) if m.contains("breakloop") || m.is_empty() => {
                Read::Stopped
            }
            Err(e) => Read::Failed(e.to_string()),
        }
    }

    /// Waits up to `ms` milliseconds for frames to arrive, or for `wake` to become readable
    /// (a stop was asked for); true when either happened.
    pub fn wait(&self, ms: u64, wake: &impl std::os::fd::AsFd) -> bool {
        let mut fds = [
            rustix::event::PollFd::new(&self.cap, rustix::event::PollFlags::IN),
            rustix::event::PollFd::new(wake, rustix::event::PollFlags::IN),
        ];
        let timeout = rustix::event::Timespec {
            tv_sec: (ms / 1000) as i64,
            tv_nsec: ((ms % 1000) * 1_000_000) as i64,
        };
        matches!(rustix::event::poll(&mut fds, Some(&timeout)), Ok(n) if n > 0)
    }

    /// Flushes the `-w` file.
    pub fn flush(&mut self) -> Result<(), String> {
        match self.save.as_mut() {
            Some(s) => s.flush().map_err(|e| e.to_string()),
            None => Ok(()),
        }
    }

    pub fn stats(&mut self) -> LiveStats {
        self.cap
            .stats()
            .map(|s| LiveStats {
                received: u64::from(s.received),
                dropped_by_kernel: u64::from(s.dropped),
                dropped_by_interface: u64::from(s.if_dropped),
            })
            .unwrap_or_default()
    }
}

/// Kernel drops over a live capture (packets lost because capdiag's buffer was full), checked
/// every second or so: where in the frame numbering they happened (between the frames read at
/// two checks), reported as they happen at most once per [`DropLog::REPORT_EVERY`], and asked
/// of each finding's evidence. Drops the interface counts (`dropped_by_interface`, from the
/// driver's statistics) include packets the network stack discarded after the capture saw
/// them, so they are in the summary only.
#[derive(Debug, Default)]
pub struct DropLog {
    /// Intervals of the frame numbering in which packets were dropped, oldest first.
    windows: std::collections::VecDeque<DropWindow>,
    /// The counters and the frames read at the last check.
    last: LiveStats,
    last_frame: u64,
    /// Drops not reported yet.
    pending: Option<DropReport>,
    /// When the last report was made (seconds since the capture began).
    last_report: Option<f64>,
    /// Windows merged into their neighbour because the log was full.
    pub merged: u64,
}

/// Packets the kernel dropped while the frames after `after_frame` up to `until_frame` were
/// captured.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DropWindow {
    pub after_frame: u64,
    pub until_frame: u64,
    pub dropped: u64,
}

/// One report of drops (the NDJSON line of type `drops`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
pub struct DropReport {
    /// Dropped by the kernel (its buffer was full) since the last report.
    pub dropped_by_kernel: u64,
    /// Since the capture began.
    pub total_dropped_by_kernel: u64,
    /// The drops happened after this frame was read and before `until_frame` was.
    pub after_frame: u64,
    pub until_frame: u64,
}

impl DropLog {
    /// Reports are at least this many seconds apart (the first is made at once).
    pub const REPORT_EVERY: f64 = 5.0;
    /// Windows kept: at one check a second, the last quarter of an hour at least.
    pub const MAX_WINDOWS: usize = 1024;

    /// Takes the counters read `at` seconds into the capture, with `frames` frames read so far;
    /// returns a report when one is due.
    pub fn check(&mut self, now: LiveStats, frames: u64, at: f64) -> Option<DropReport> {
        let kernel = now
            .dropped_by_kernel
            .saturating_sub(self.last.dropped_by_kernel);
        if kernel > 0 {
            // The frame read at the last check, and the next one after this check: a packet
            // dropped in between would have had a number in that interval.
            let window = DropWindow {
                after_frame: self.last_frame,
                until_frame: frames.saturating_add(1),
                dropped: kernel,
            };
            if self.windows.len() >= Self::MAX_WINDOWS
                && let (Some(a), Some(b)) = (self.windows.pop_front(), self.windows.pop_front())
            {
                self.windows.push_front(DropWindow {
                    after_frame: a.after_frame,
                    until_frame: b.until_frame,
                    dropped: a.dropped + b.dropped,
                });
                self.merged += 1;
            }
            self.windows.push_back(window);
            let p = self.pending.get_or_insert(DropReport {
                dropped_by_kernel: 0,
                total_dropped_by_kernel: 0,
                after_frame: self.last_frame,
                until_frame: 0,
            });
            p.dropped_by_kernel += kernel;
            p.total_dropped_by_kernel = now.dropped_by_kernel;
            p.until_frame = window.until_frame;
        }
        self.last.dropped_by_kernel = now.dropped_by_kernel.max(self.last.dropped_by_kernel);
        self.last_frame = frames;
        let due = self
            .last_report
            .is_none_or(|t| at - t >= Self::REPORT_EVERY);
        if due && self.pending.is_some() {
            self.last_report = Some(at);
            return self.pending.take();
        }
        None
    }

    /// Drops not reported yet, at the end of the capture.
    pub fn flush(&mut self) -> Option<DropReport> {
        self.pending.take()
    }

    /// Packets dropped while frames `first..=last` were captured: evidence spanning them may
    /// be incomplete when this is not 0.
    pub fn during(&self, first: u64, last: u64) -> u64 {
        self.windows
            .iter()
            .filter(|w| w.after_frame < last && w.until_frame > first)
            .map(|w| w.dropped)
            .sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stats(kernel: u64) -> LiveStats {
        LiveStats {
            received: 0,
            dropped_by_kernel: kernel,
            dropped_by_interface: 0,
        }
    }

    #[test]
    fn drops_are_reported_at_once_then_at_most_every_five_seconds() {
        let mut log = DropLog::default();
        assert_eq!(log.check(stats(0), 100, 1.0), None);
        let r = log.check(stats(7), 200, 2.0).expect("first report at once");
        assert_eq!(
            (
                r.dropped_by_kernel,
                r.total_dropped_by_kernel,
                r.after_frame,
                r.until_frame
            ),
            (7, 7, 100, 201)
        );
        // More drops within 5 s: held, then reported together.
        assert_eq!(log.check(stats(10), 300, 3.0), None);
        assert_eq!(log.check(stats(12), 400, 4.0), None);
        assert_eq!(log.check(stats(12), 500, 6.0), None);
        let r = log.check(stats(12), 600, 7.0).expect("due again");
        assert_eq!(
            (
                r.dropped_by_kernel,
                r.total_dropped_by_kernel,
                r.after_frame,
                r.until_frame
            ),
            (5, 12, 200, 401)
        );
        assert_eq!(log.check(stats(12), 700, 20.0), None);
        assert_eq!(
            log.check(stats(13), 800, 21.0).map(|r| r.dropped_by_kernel),
            Some(1)
        );
        assert_eq!(log.check(stats(14), 900, 22.0), None);
        assert_eq!(log.flush().map(|r| r.dropped_by_kernel), Some(1));
        assert_eq!(log.flush(), None);
    }

    #[test]
    fn evidence_is_asked_against_the_frames_read_around_the_drops() {
        let mut log = DropLog::default();
        log.check(stats(0), 100, 1.0);
        log.check(stats(3), 150, 2.0);
        log.check(stats(3), 400, 3.0);
        // Dropped between frames 100 and 151.
        assert_eq!(log.during(1, 100), 0);
        assert_eq!(log.during(1, 101), 3);
        assert_eq!(log.during(120, 130), 3);
        assert_eq!(log.during(150, 300), 3);
        assert_eq!(log.during(151, 300), 0);
        assert_eq!(log.during(200, 400), 0);
    }

    #[test]
    fn the_log_is_bounded_and_merges_its_oldest_windows() {
        let mut log = DropLog::default();
        for i in 0..(DropLog::MAX_WINDOWS as u64 + 10) {
            log.check(stats(i + 1), (i + 1) * 10, i as f64);
        }
        assert_eq!(log.windows.len(), DropLog::MAX_WINDOWS);
        assert_eq!(log.merged, 10);
        // Nothing is lost by merging: every drop is still counted somewhere.
        assert_eq!(log.during(0, u64::MAX), DropLog::MAX_WINDOWS as u64 + 10);
    }
}
