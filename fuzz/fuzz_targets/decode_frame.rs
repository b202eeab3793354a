//! One frame through `capdiag::decode::decode`.
//!
//! Input layout:
//! * byte 0: link type, `LINKS[byte % LINKS.len()]`;
//! * byte 1: how much longer the frame was on the wire than what was captured
//!   (0: not truncated; 254: a wire length of 0; 255: `u32::MAX`; otherwise `byte * 64` more);
//! * the rest: the captured frame bytes.
#![no_main]

use capdiag::capture::{Frame, LinkType};
use capdiag::decode::{Decoded, decode};
use libfuzzer_sys::fuzz_target;

const LINKS: [LinkType; 9] = [
    LinkType::NULL,
    LinkType::ETHERNET,
    LinkType::RAW,
    LinkType::LOOP,
    LinkType::LINUX_SLL,
    LinkType::IPV4,
    LinkType::IPV6,
    LinkType::NFLOG,
    LinkType::LINUX_SLL2,
];

fuzz_target!(|input: &[u8]| {
    let [sel, extra, data @ ..] = input else {
        return;
    };
    let link_type = LINKS[usize::from(*sel) % LINKS.len()];
    let cap = u32::try_from(data.len()).unwrap_or(u32::MAX);
    let wire_len = match *extra {
        0 => cap,
        254 => 0,
        255 => u32::MAX,
        n => cap.saturating_add(u32::from(n) * 64),
    };
    let frame = Frame {
        number: 1,
        ts: 0,
        link_type,
        wire_len,
        data,
    };
    match decode(&frame) {
        Decoded::Tcp(seg) => {
            // The claimed payload length is never below what was captured.
            assert!(
                u64::from(seg.payload_len) >= seg.payload.len() as u64,
                "payload_len {} < captured payload {}",
                seg.payload_len,
                seg.payload.len()
            );
            assert!(seg.header.len() >= 20, "TCP header shorter than 20 bytes");
            let _ = seg.has(capdiag::decode::flags::SYN);
        }
        Decoded::TcpHeaderOnly(seg, m) => {
            assert!(seg.payload.is_empty());
            let _ = m.describe();
        }
        Decoded::Malformed(m) => {
            let _ = m.describe();
        }
        Decoded::UnsupportedLink(lt) => {
            let _ = lt.to_string();
        }
        Decoded::IcmpUnreachable(_) | Decoded::OtherIp | Decoded::Fragment | Decoded::NotIp(_) => {}
    }
});
