//! Frame sources: where frames come from and how they are numbered.
//!
//! Every record of a capture becomes a [`Frame`] with the number Wireshark gives it: 1-based,
//! counting every packet record in the file (non-IP ones, ones of unknown link types, truncated
//! ones), never filtered. Whatever reads frames keeps that promise; everything downstream only
//! carries the number along.

pub mod file;
pub mod live;
pub mod prefetch;
pub mod stream;
pub mod write;

/// A link-layer header type as registered at tcpdump.org (`LINKTYPE_*`), kept as its raw value.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct LinkType(pub u32);

impl LinkType {
    pub const NULL: LinkType = LinkType(0);
    pub const ETHERNET: LinkType = LinkType(1);
    pub const RAW: LinkType = LinkType(101);
    pub const LOOP: LinkType = LinkType(108);
    pub const LINUX_SLL: LinkType = LinkType(113);
    pub const IPV4: LinkType = LinkType(228);
    pub const IPV6: LinkType = LinkType(229);
    pub const LINUX_SLL2: LinkType = LinkType(276);
    pub const NFLOG: LinkType = LinkType(239);

    // Records that Wireshark numbers as frames but that carry no packet capdiag can place,
    // given link types of their own at the top of the range, where no registered one lies.
    /// A packet block that names no interface of its section, or an obsolete Packet Block.
    pub const NO_INTERFACE: LinkType = LinkType(u32::MAX);
    /// A pcapng systemd Journal Export Block: a log entry.
    pub const SYSTEMD_JOURNAL: LinkType = LinkType(u32::MAX - 1);
    /// A pcapng Custom Block (copiable or not), whatever its vendor.
    pub const PCAPNG_CUSTOM: LinkType = LinkType(u32::MAX - 2);
    /// A pcapng Sysdig event block: a system call, not a packet.
    pub const SYSDIG_EVENT: LinkType = LinkType(u32::MAX - 3);

    /// What a record of one of the pseudo link types above is, for the report.
    pub fn record_kind(self) -> Option<&'static str> {
        Some(match self {
            LinkType::NO_INTERFACE => {
                "packet blocks of no known interface, and obsolete Packet Blocks (not decoded)"
            }
            LinkType::SYSTEMD_JOURNAL => "pcapng systemd journal entries (not packets)",
            LinkType::PCAPNG_CUSTOM => "pcapng custom blocks (not packets)",
            LinkType::SYSDIG_EVENT => "pcapng Sysdig events (not packets)",
            _ => return None,
        })
    }

    /// The tcpdump name of a link type, or `None` for one capdiag has no name for.
    pub fn name(self) -> Option<&'static str> {
        Some(match self.0 {
            0 => "NULL",
            1 => "EN10MB",
            101 => "RAW",
            108 => "LOOP",
            113 => "LINUX_SLL",
            228 => "IPV4",
            229 => "IPV6",
            276 => "LINUX_SLL2",
            105 => "IEEE802_11",
            127 => "IEEE802_11_RADIOTAP",
            239 => "NFLOG",
            9 => "PPP",
            12 => "RAW (OpenBSD)",
            14 => "RAW (BSD/OS)",
            _ => return None,
        })
    }
}

impl std::fmt::Display for LinkType {
    /// `EN10MB (1)`, or `LINKTYPE 147` for one without a name.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.name() {
            Some(n) => write!(f, "{n} ({})", self.0),
            None => write!(f, "LINKTYPE {}", self.0),
        }
    }
}

/// Nanoseconds since the Unix epoch, as recorded in the capture.
pub type TimestampNs = i64;

/// One captured record, borrowed from the reader's buffer.
#[derive(Clone, Copy, Debug)]
pub struct Frame<'a> {
    /// Wireshark's `frame.number`: 1-based, every record counted.
    pub number: u64,
    pub ts: TimestampNs,
    pub link_type: LinkType,
    /// Length of the packet on the wire (`frame.len`); `data.len()` is what was captured.
    pub wire_len: u32,
    pub data: &'a [u8],
}
