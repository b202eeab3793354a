//! Link layers: find the network-layer packet inside a frame.
//!
//! Supported: Ethernet (with any stack of 802.1Q / 802.1ad / QinQ tags, and PPPoE sessions),
//! Linux cooked capture v1 and v2 (`tcpdump -i any`), raw IP, BSD loopback (NULL and LOOP).

use crate::capture::LinkType;

pub const ETHERTYPE_IPV4: u16 = 0x0800;
pub const ETHERTYPE_IPV6: u16 = 0x86dd;
const ETHERTYPE_VLAN: u16 = 0x8100;
const ETHERTYPE_QINQ: u16 = 0x88a8;
const ETHERTYPE_QINQ_OLD: u16 = 0x9100;
const ETHERTYPE_PPPOE_SESSION: u16 = 0x8864;
const PPP_IPV4: u16 = 0x0021;
const PPP_IPV6: u16 = 0x0057;
/// More stacked VLAN tags than this is not a real frame.
const MAX_VLAN_TAGS: usize = 8;

/// What a link layer carries.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Network<'a> {
    Ip(&'a [u8]),
    NotIp(u16),
    Unsupported,
    Truncated,
}

/// Reads a big-endian u16 at `off`.
pub fn be16(b: &[u8], off: usize) -> Option<u16> {
    let s = b.get(off..off.checked_add(2)?)?;
    Some(u16::from_be_bytes(s.try_into().ok()?))
}

fn be32(b: &[u8], off: usize) -> Option<u32> {
    let s = b.get(off..off.checked_add(4)?)?;
    Some(u32::from_be_bytes(s.try_into().ok()?))
}

/// Finds the IP packet in a frame of the given link type.
pub fn network_payload(link: LinkType, data: &[u8]) -> Network<'_> {
    match link {
        LinkType::ETHERNET => ethernet(data),
        LinkType::LINUX_SLL => {
            // 16-byte header; protocol (an EtherType) at offset 14.
            match (be16(data, 14), data.get(16..)) {
                (Some(proto), Some(rest)) => ethertype(proto, rest),
                _ => Network::Truncated,
            }
        }
        LinkType::LINUX_SLL2 => {
            // 20-byte header; protocol (an EtherType) at offset 0.
            match (be16(data, 0), data.get(20..)) {
                (Some(proto), Some(rest)) => ethertype(proto, rest),
                _ => Network::Truncated,
            }
        }
        LinkType::NULL | LinkType::LOOP => {
            // 4-byte address family: host byte order for NULL, network order for LOOP; accept
            // both since the capturing host is unknown. AF_INET is 2 everywhere; AF_INET6 is 10
            // (Linux), 24 (NetBSD/OpenBSD), 28 (FreeBSD), 30 (macOS).
            let (Some(be), Some(rest)) = (be32(data, 0), data.get(4..)) else {
                return Network::Truncated;
            };
            let le = be.swap_bytes();
            let family = if be < 256 { be } else { le };
            match family {
                2 | 10 | 24 | 28 | 30 => Network::Ip(rest),
                _ => Network::NotIp(0),
            }
        }
        LinkType::RAW | LinkType::IPV4 | LinkType::IPV6 | LinkType(12) | LinkType(14) => {
            match data.first().map(|b| b >> 4) {
                Some(4) | Some(6) => Network::Ip(data),
                Some(_) => Network::NotIp(0),
                None => Network::Truncated,
            }
        }
        LinkType::NFLOG => nflog(data),
        _ => Network::Unsupported,
    }
}

/// Linux netfilter log (NFLOG): a 4-byte header, then TLVs whose length and type are in the
/// capturing host's byte order; the packet is the NFULA_PAYLOAD (type 9) TLV.
fn nflog(data: &[u8]) -> Network<'_> {
    const NFULA_PAYLOAD: u16 = 9;
    let Some(family) = data.first().copied() else {
        return Network::Truncated;
    };
    if family != 2 && family != 10 {
        return Network::NotIp(0);
    }
    for little in [true, false] {
        let mut off = 4;
        while let (Some(l), Some(t)) = (data.get(off..off + 2), data.get(off + 2..off + 4)) {
            let rd = |b: &[u8]| {
                let a = [
                    b.first().copied().unwrap_or(0),
                    b.get(1).copied().unwrap_or(0),
                ];
                if little {
                    u16::from_le_bytes(a)
                } else {
                    u16::from_be_bytes(a)
                }
            };
            let (len, typ) = (usize::from(rd(l)), rd(t));
            if len < 4 || off + len > data.len() {
                break;
            }
            if typ == NFULA_PAYLOAD {
                return match data.get(off + 4..off + len) {
                    Some(ip) => Network::Ip(ip),
                    None => Network::Truncated,
                };
            }
            off += (len + 3) & !3;
        }
    }
    Network::NotIp(0)
}

fn ethernet(data: &[u8]) -> Network<'_> {
    let Some(mut et) = be16(data, 12) else {
        return Network::Truncated;
    };
    let mut off = 14;
    let mut tags = 0;
    while matches!(et, ETHERTYPE_VLAN | ETHERTYPE_QINQ | ETHERTYPE_QINQ_OLD) {
        tags += 1;
        if tags > MAX_VLAN_TAGS {
            return Network::NotIp(et);
        }
        let Some(next) = be16(data, off + 2) else {
            return Network::Truncated;
        };
        et = next;
        off += 4;
    }
    match data.get(off..) {
        Some(rest) => ethertype(et, rest),
        None => Network::Truncated,
    }
}

fn ethertype(et: u16, rest: &[u8]) -> Network<'_> {
    match et {
        ETHERTYPE_IPV4 | ETHERTYPE_IPV6 => Network::Ip(rest),
        ETHERTYPE_PPPOE_SESSION => {
            // RFC 2516: 6-byte PPPoE header, then the PPP protocol: 2 bytes, or 1 when
            // compressed (an odd first byte, RFC 1661 §6.5).
            let (proto, at) = match rest.get(6) {
                Some(b) if b & 1 == 1 => (u16::from(*b), 7),
                Some(_) => match be16(rest, 6) {
                    Some(p) => (p, 8),
                    None => return Network::Truncated,
                },
                None => return Network::Truncated,
            };
            match (proto, rest.get(at..)) {
                (PPP_IPV4 | PPP_IPV6, Some(ip)) => Network::Ip(ip),
                (_, Some(_)) => Network::NotIp(et),
                _ => Network::Truncated,
            }
        }
        _ => Network::NotIp(et),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const IP: [u8; 2] = [0x45, 0x00];

    #[test]
    fn ethernet_plain_and_tagged() {
        let mut f = vec![0u8; 12];
        f.extend_from_slice(&[0x08, 0x00]);
        f.extend_from_slice(&IP);
        assert_eq!(network_payload(LinkType::ETHERNET, &f), Network::Ip(&IP));

        let mut q = vec![0u8; 12];
        q.extend_from_slice(&[0x88, 0xa8, 0, 1, 0x81, 0x00, 0, 2, 0x86, 0xdd]);
        q.extend_from_slice(&IP);
        assert_eq!(network_payload(LinkType::ETHERNET, &q), Network::Ip(&IP));
    }

    #[test]
    fn ethernet_truncated_and_not_ip() {
        assert_eq!(
            network_payload(LinkType::ETHERNET, &[0; 13]),
            Network::Truncated
        );
        let mut tagged = vec![0u8; 12];
        tagged.extend_from_slice(&[0x81, 0x00, 0]);
        assert_eq!(
            network_payload(LinkType::ETHERNET, &tagged),
            Network::Truncated
        );
        let mut arp = vec![0u8; 12];
        arp.extend_from_slice(&[0x08, 0x06, 1, 2]);
        assert_eq!(
            network_payload(LinkType::ETHERNET, &arp),
            Network::NotIp(0x0806)
        );
    }

    #[test]
    fn endless_vlan_tags_are_not_ip() {
        let mut f = vec![0u8; 12];
        for _ in 0..20 {
            f.extend_from_slice(&[0x81, 0x00, 0, 1]);
        }
        assert_eq!(
            network_payload(LinkType::ETHERNET, &f),
            Network::NotIp(0x8100)
        );
    }

    #[test]
    fn linux_cooked_v1_and_v2() {
        let mut v1 = vec![0u8; 14];
        v1.extend_from_slice(&[0x08, 0x00]);
        v1.extend_from_slice(&IP);
        assert_eq!(network_payload(LinkType::LINUX_SLL, &v1), Network::Ip(&IP));
        let mut v2 = vec![0x86, 0xdd];
        v2.extend_from_slice(&[0u8; 18]);
        v2.extend_from_slice(&IP);
        assert_eq!(network_payload(LinkType::LINUX_SLL2, &v2), Network::Ip(&IP));
        assert_eq!(
            network_payload(LinkType::LINUX_SLL2, &[0x08]),
            Network::Truncated
        );
    }

    #[test]
    fn loopback_families_in_either_byte_order() {
        for fam in [[2u8, 0, 0, 0], [0, 0, 0, 2], [30, 0, 0, 0], [0, 0, 0, 24]] {
            let mut f = fam.to_vec();
            f.extend_from_slice(&IP);
            assert_eq!(network_payload(LinkType::NULL, &f), Network::Ip(&IP));
        }
        assert_eq!(
            network_payload(LinkType::NULL, &[7, 0, 0, 0, 1]),
            Network::NotIp(0)
        );
        assert_eq!(network_payload(LinkType::NULL, &[2, 0]), Network::Truncated);
    }

    #[test]
    fn pppoe_session() {
        let mut f = vec![0u8; 12];
        f.extend_from_slice(&[0x88, 0x64, 0x11, 0, 0, 1, 0, 10, 0x00, 0x21]);
        f.extend_from_slice(&IP);
        assert_eq!(network_payload(LinkType::ETHERNET, &f), Network::Ip(&IP));
        // Protocol-field compression: one byte.
        let mut c = vec![0u8; 12];
        c.extend_from_slice(&[0x88, 0x64, 0x11, 0, 0, 1, 0, 10, 0x21]);
        c.extend_from_slice(&IP);
        assert_eq!(network_payload(LinkType::ETHERNET, &c), Network::Ip(&IP));
    }

    #[test]
    fn nflog_payload_tlv() {
        // header, a 8-byte TLV of type 1, then the payload TLV (type 9), little-endian.
        let mut f = vec![2, 0, 0, 1, 8, 0, 1, 0, 0, 0, 0, 0, 6, 0, 9, 0];
        f.extend_from_slice(&IP);
        assert_eq!(network_payload(LinkType::NFLOG, &f), Network::Ip(&IP));
        assert_eq!(
            network_payload(LinkType::NFLOG, &[2, 0, 0, 1, 200, 0]),
            Network::NotIp(0)
        );
    }

    #[test]
    fn raw_ip_and_unknown_link() {
        assert_eq!(network_payload(LinkType::RAW, &IP), Network::Ip(&IP));
        assert_eq!(network_payload(LinkType::RAW, &[0x12]), Network::NotIp(0));
        assert_eq!(network_payload(LinkType::RAW, &[]), Network::Truncated);
        assert_eq!(network_payload(LinkType(147), &IP), Network::Unsupported);
    }
}
