//! Flow keys: an address/port pair in canonical order, and the direction of a packet in it.

use std::net::{IpAddr, SocketAddr};

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(crate) struct Endpoint {
    pub(crate) addr: IpAddr,
    pub(crate) port: u16,
}

/// An address/port pair in canonical order.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FlowKey {
    pub(crate) lo: Endpoint,
    pub(crate) hi: Endpoint,
}

/// Hashed as the fields are, but an IPv4 pair (nearly every key) as two words: the table is
/// looked up once a segment.
impl std::hash::Hash for FlowKey {
    fn hash<H: std::hash::Hasher>(&self, h: &mut H) {
        match (self.lo.addr, self.hi.addr) {
            (IpAddr::V4(a), IpAddr::V4(b)) => {
                h.write_u64(u64::from(a.to_bits()) << 32 | u64::from(b.to_bits()));
                h.write_u32(u32::from(self.lo.port) << 16 | u32::from(self.hi.port));
            }
            _ => {
                self.lo.hash(h);
                self.hi.hash(h);
            }
        }
    }
}

impl FlowKey {
    /// The key of a packet and the direction it travels (0: from `lo`).
    pub(crate) fn of(src: IpAddr, sport: u16, dst: IpAddr, dport: u16) -> (FlowKey, usize) {
        let s = Endpoint {
            addr: src,
            port: sport,
        };
        let d = Endpoint {
            addr: dst,
            port: dport,
        };
        // IPv4 ordered as one number, address then port, as `IpAddr` and the tuple order them.
        let s_first = match (src, dst) {
            (IpAddr::V4(a), IpAddr::V4(b)) => {
                (u64::from(a.to_bits()) << 16 | u64::from(sport))
                    <= (u64::from(b.to_bits()) << 16 | u64::from(dport))
            }
            _ => (s.addr, s.port) <= (d.addr, d.port),
        };
        if s_first {
            (FlowKey { lo: s, hi: d }, 0)
        } else {
            (FlowKey { lo: d, hi: s }, 1)
        }
    }

    pub(crate) fn endpoints(&self) -> [SocketAddr; 2] {
        [
            SocketAddr::new(self.lo.addr, self.lo.port),
            SocketAddr::new(self.hi.addr, self.hi.port),
        ]
    }
}
