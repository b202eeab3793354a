//! Live capture through libpcap: immediate mode, a large buffer, `-i any` as Linux cooked v2,
//! errors a person can act on, and a handle that stops a blocked read at once.

use super::{Frame, LinkType};
use std::path::Path;

/// Why a live capture could not start.
#[derive(Debug, thiserror::Error)]
pub enum LiveError {
    #[error(
        "capturing on {iface} needs privileges: run as root, or give the binary the capabilities once with `sudo setcap cap_net_raw,cap_net_admin=eip {exe}` (in a container: add the NET_RAW and NET_ADMIN capabilities)"
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
    /// Read timeout, milliseconds: how often an idle capture wakes up.
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
            .immediate_mode(true)
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

    /// Waits up to `ms` milliseconds for frames to arrive; true when some may have.
    pub fn wait(&self, ms: u64) -> bool {
        let mut fds = [rustix::event::PollFd::new(
            &self.cap,
            rustix::event::PollFlags::IN,
        )];
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
