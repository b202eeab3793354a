//! Findings: what went wrong, the frames that prove it, what to change.

use crate::capture::TimestampNs;
use serde::Serialize;
use std::net::{IpAddr, SocketAddr};

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Info,
    Warning,
    Error,
}

impl Severity {
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Info => "info",
            Severity::Warning => "warning",
            Severity::Error => "error",
        }
    }
}

impl std::str::FromStr for Severity {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "info" => Ok(Severity::Info),
            "warning" => Ok(Severity::Warning),
            "error" => Ok(Severity::Error),
            _ => Err(format!("unknown severity '{s}' (info, warning, error)")),
        }
    }
}

/// One end of an evidence packet: its address, and the part it plays in the finding.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Party {
    pub ip: IpAddr,
    /// None for a host that is not one end of a TCP connection (an ICMP error's sender).
    pub port: Option<u16>,
    /// `client`, `server`, or what the rule knows the server to be (`registry`, `S3 endpoint`,
    /// `token realm`, `proxy`); `router` for an ICMP error's sender.
    pub role: &'static str,
}

impl Party {
    pub const CLIENT: &'static str = "client";
    pub const SERVER: &'static str = "server";

    pub fn client(addr: SocketAddr) -> Party {
        Party {
            ip: addr.ip(),
            port: Some(addr.port()),
            role: Party::CLIENT,
        }
    }

    pub fn server(addr: SocketAddr) -> Party {
        Party {
            ip: addr.ip(),
            port: Some(addr.port()),
            role: Party::SERVER,
        }
    }

    /// A host without a port (an ICMP error's sender).
    pub fn host(ip: IpAddr, role: &'static str) -> Party {
        Party {
            ip,
            port: None,
            role,
        }
    }

    pub fn is_client(&self) -> bool {
        self.role == Party::CLIENT
    }

    /// `10.0.0.1:80`, `[2001:db8::1]:80`, or the bare address without a port.
    pub fn addr(&self) -> String {
        match self.port {
            Some(p) => SocketAddr::new(self.ip, p).to_string(),
            None => self.ip.to_string(),
        }
    }
}

impl Serialize for Party {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeStruct;
        let mut st = s.serialize_struct("Party", 2)?;
        st.serialize_field("addr", &self.addr())?;
        st.serialize_field("role", self.role)?;
        st.end()
    }
}

/// One frame of evidence and what it shows.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Evidence {
    pub frame: u64,
    pub stream: Option<u64>,
    pub what: String,
    /// The packet's sender, when the evidence is one packet between two parties.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub from: Option<Party>,
    /// The packet's receiver.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub to: Option<Party>,
    /// Capture time of the frame (nanoseconds since the epoch; seconds in JSON).
    #[serde(skip_serializing_if = "Option::is_none", serialize_with = "seconds")]
    pub time: Option<TimestampNs>,
    /// The message in a few words, for a ladder diagram (`GET /v2/`, `403 AccessDenied`,
    /// `SYN (retransmission #3)`); `what` says it in full.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub label: String,
}

fn seconds<S: serde::Serializer>(t: &Option<TimestampNs>, s: S) -> Result<S::Ok, S::Error> {
    match t {
        Some(ns) => s.serialize_f64(*ns as f64 / 1e9),
        None => s.serialize_none(),
    }
}

impl Evidence {
    /// Evidence that is a frame and what it shows, not drawn as a packet between parties.
    pub fn note(frame: u64, stream: Option<u64>, what: impl Into<String>) -> Evidence {
        Evidence {
            frame,
            stream,
            what: what.into(),
            from: None,
            to: None,
            time: None,
            label: String::new(),
        }
    }

    /// Evidence that is one packet from `from` to `to` at `ts`, said in full (`what`) and in
    /// a few words (`label`).
    pub fn packet(
        frame: u64,
        stream: Option<u64>,
        (from, to): (Party, Party),
        ts: impl Into<Option<TimestampNs>>,
        what: impl Into<String>,
        label: impl Into<String>,
    ) -> Evidence {
        Evidence {
            frame,
            stream,
            what: what.into(),
            from: Some(from),
            to: Some(to),
            time: ts.into(),
            label: label.into(),
        }
    }
}

/// Names the part the server at `addr` plays (`registry`, `S3 endpoint`) wherever the evidence
/// still calls it `server`.
pub fn name_server(evidence: &mut [Evidence], addr: SocketAddr, role: &'static str) {
    for e in evidence {
        for p in [e.from.as_mut(), e.to.as_mut()].into_iter().flatten() {
            if p.role == Party::SERVER && p.ip == addr.ip() && p.port == Some(addr.port()) {
                p.role = role;
            }
        }
    }
}

/// A diagnosis.
#[derive(Clone, Debug, Serialize)]
pub struct Finding {
    /// Stable rule id (`s3-error-not-xml`, ...).
    pub rule: &'static str,
    pub severity: Severity,
    /// The Wireshark frame that best shows the problem.
    pub key_frame: u64,
    /// Every evidence frame, ascending.
    pub frames: Vec<u64>,
    /// TCP streams involved, ascending.
    pub streams: Vec<u64>,
    pub title: String,
    pub detail: String,
    pub remediation: String,
    /// A Wireshark display filter that shows exactly the evidence frames.
    pub filter: String,
    /// The evidence, frame by frame.
    pub evidence: Vec<Evidence>,
    /// Capture time (seconds since the epoch) of the key frame's exchange or attempt.
    pub time: f64,
    /// What makes two findings of the rule the same problem (a client and a URL, say): a repeat
    /// within the rule's suppression interval is not reported again.
    #[serde(skip)]
    pub identifier: Option<String>,
}

/// A finding as a rule writes it, each part named (the title, detail and remediation cannot be
/// swapped by mistake); [`FindingDraft::build`] derives the rest.
#[derive(Clone, Debug)]
pub struct FindingDraft {
    pub rule: &'static str,
    pub severity: Severity,
    /// The Wireshark frame that best shows the problem.
    pub key_frame: u64,
    pub evidence: Vec<Evidence>,
    /// One line.
    pub title: String,
    /// What happened, in plain words.
    pub detail: String,
    /// What to change, and how to verify.
    pub remediation: String,
    /// Capture time (seconds since the epoch) of the key frame's exchange or attempt.
    pub time: f64,
    /// See [`Finding::identifier`].
    pub identifier: Option<String>,
}

impl FindingDraft {
    /// The finding: evidence in frame order, its frames and streams, the display filter.
    pub fn build(self) -> Finding {
        let FindingDraft {
            rule,
            severity,
            key_frame,
            mut evidence,
            title,
            detail,
            remediation,
            time,
            identifier,
        } = self;
        evidence.sort_by_key(|e| e.frame);
        evidence.dedup_by(|a, b| a.frame == b.frame && a.what == b.what);
        let mut frames: Vec<u64> = evidence.iter().map(|e| e.frame).collect();
        if !frames.contains(&key_frame) {
            frames.push(key_frame);
        }
        frames.sort_unstable();
        frames.dedup();
        let mut streams: Vec<u64> = evidence.iter().filter_map(|e| e.stream).collect();
        streams.sort_unstable();
        streams.dedup();
        let filter = display_filter(&frames);
        Finding {
            rule,
            severity,
            key_frame,
            frames,
            streams,
            title,
            detail,
            remediation,
            filter,
            evidence,
            time,
            identifier,
        }
    }
}

/// `frame.number in {6, 8, 10}`: Wireshark 4.0 set syntax (commas required since 4.0).
pub fn display_filter(frames: &[u64]) -> String {
    let list: Vec<String> = frames.iter().map(u64::to_string).collect();
    format!("frame.number in {{{}}}", list.join(", "))
}

/// `4-8,20`: frame ranges for `capdiag extract --frames`.
pub fn frame_ranges(frames: &[u64]) -> String {
    let mut out: Vec<String> = Vec::new();
    let mut i = 0;
    while let Some(&start) = frames.get(i) {
        let mut end = start;
        while frames.get(i + 1) == Some(&(end + 1)) {
            end += 1;
            i += 1;
        }
        out.push(if end == start {
            start.to_string()
        } else {
            format!("{start}-{end}")
        });
        i += 1;
    }
    out.join(",")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filters_and_ranges() {
        assert_eq!(display_filter(&[6, 8]), "frame.number in {6, 8}");
        assert_eq!(frame_ranges(&[4, 5, 6, 7, 8, 20, 22, 23]), "4-8,20,22-23");
        assert_eq!(frame_ranges(&[]), "");
    }
}
