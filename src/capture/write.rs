//! Writing frames to a new capture (for `capdiag extract`): classic pcap when every frame has
//! the source's single link type, pcapng otherwise.

use super::{Frame, LinkType};
use std::io::{self, Write};

const SNAPLEN: u32 = 262_144;

pub enum CaptureWriter<W: Write> {
    Pcap {
        out: W,
        nanosecond: bool,
        link: LinkType,
    },
    PcapNg {
        out: W,
        interfaces: Vec<LinkType>,
    },
}

impl<W: Write> CaptureWriter<W> {
    /// A classic pcap file of one link type.
    pub fn pcap(mut out: W, link: LinkType, nanosecond: bool) -> io::Result<Self> {
        let magic: u32 = if nanosecond { 0xa1b2_3c4d } else { 0xa1b2_c3d4 };
        out.write_all(&magic.to_le_bytes())?;
        out.write_all(&2u16.to_le_bytes())?;
        out.write_all(&4u16.to_le_bytes())?;
        out.write_all(&0i32.to_le_bytes())?;
        out.write_all(&0u32.to_le_bytes())?;
        out.write_all(&SNAPLEN.to_le_bytes())?;
        out.write_all(&link.0.to_le_bytes())?;
        Ok(CaptureWriter::Pcap {
            out,
            nanosecond,
            link,
        })
    }

    /// A pcapng file; an interface is described for each link type as it first appears.
    pub fn pcapng(mut out: W) -> io::Result<Self> {
        out.write_all(&0x0a0d_0d0au32.to_le_bytes())?;
        out.write_all(&28u32.to_le_bytes())?;
        out.write_all(&0x1a2b_3c4du32.to_le_bytes())?;
        out.write_all(&1u16.to_le_bytes())?;
        out.write_all(&0u16.to_le_bytes())?;
        out.write_all(&(-1i64).to_le_bytes())?;
        out.write_all(&28u32.to_le_bytes())?;
        Ok(CaptureWriter::PcapNg {
            out,
            interfaces: Vec::new(),
        })
    }

    /// Writes a Decryption Secrets Block of type `kind` holding `secrets` (pcapng only; before
    /// the packets that need it).
    pub fn write_secrets(&mut self, kind: u32, secrets: &[u8]) -> io::Result<()> {
        let CaptureWriter::PcapNg { out, .. } = self else {
            return Err(io::Error::other("secrets need a pcapng output"));
        };
        let len = u32::try_from(secrets.len()).map_err(io::Error::other)?;
        let pad = (4 - secrets.len() % 4) % 4;
        let total = u32::try_from(20 + secrets.len() + pad).map_err(io::Error::other)?;
        out.write_all(&0x0000_000au32.to_le_bytes())?;
        out.write_all(&total.to_le_bytes())?;
        out.write_all(&kind.to_le_bytes())?;
        out.write_all(&len.to_le_bytes())?;
        out.write_all(secrets)?;
        out.write_all([0u8; 3].get(..pad).unwrap_or_default())?;
        out.write_all(&total.to_le_bytes())
    }

    pub fn write(&mut self, f: &Frame<'_>) -> io::Result<()> {
        let caplen = u32::try_from(f.data.len()).unwrap_or(u32::MAX);
        let secs = f.ts.div_euclid(1_000_000_000);
        let nanos = f.ts.rem_euclid(1_000_000_000);
        match self {
            CaptureWriter::Pcap {
                out,
                nanosecond,
                link,
            } => {
                if f.link_type != *link {
                    return Err(io::Error::other(format!(
                        "frame {} has link type {}, the output {}",
                        f.number, f.link_type, link
                    )));
                }
                let frac = if *nanosecond { nanos } else { nanos / 1000 };
                out.write_all(&(secs as u32).to_le_bytes())?;
                out.write_all(&(frac as u32).to_le_bytes())?;
                out.write_all(&caplen.to_le_bytes())?;
                out.write_all(&f.wire_len.max(caplen).to_le_bytes())?;
                out.write_all(f.data)
            }
            CaptureWriter::PcapNg { out, interfaces } => {
                let iface = match interfaces.iter().position(|l| *l == f.link_type) {
                    Some(i) => i,
                    None => {
                        // Interface description: link type, snaplen, if_tsresol = 9 (ns).
                        out.write_all(&1u32.to_le_bytes())?;
                        out.write_all(&32u32.to_le_bytes())?;
                        out.write_all(&(f.link_type.0 as u16).to_le_bytes())?;
                        out.write_all(&0u16.to_le_bytes())?;
                        out.write_all(&SNAPLEN.to_le_bytes())?;
                        out.write_all(&9u16.to_le_bytes())?;
                        out.write_all(&1u16.to_le_bytes())?;
                        out.write_all(&[9, 0, 0, 0])?;
                        out.write_all(&[0, 0, 0, 0])?;
                        out.write_all(&32u32.to_le_bytes())?;
                        interfaces.push(f.link_type);
                        interfaces.len() - 1
                    }
                };
                let ts = u64::try_from(f.ts).unwrap_or(0);
                let pad = (4 - f.data.len() % 4) % 4;
                let total = 32 + f.data.len() + pad;
                out.write_all(&6u32.to_le_bytes())?;
                out.write_all(&(total as u32).to_le_bytes())?;
                out.write_all(&(iface as u32).to_le_bytes())?;
                out.write_all(&((ts >> 32) as u32).to_le_bytes())?;
                out.write_all(&(ts as u32).to_le_bytes())?;
                out.write_all(&caplen.to_le_bytes())?;
                out.write_all(&f.wire_len.max(caplen).to_le_bytes())?;
                out.write_all(f.data)?;
                out.write_all([0u8; 3].get(..pad).unwrap_or_default())?;
                out.write_all(&(total as u32).to_le_bytes())
            }
        }
    }

    pub fn finish(self) -> io::Result<W> {
        let mut out = match self {
            CaptureWriter::Pcap { out, .. } | CaptureWriter::PcapNg { out, .. } => out,
        };
        out.flush()?;
        Ok(out)
    }
}

/// Parses `4-8,20` into a sorted list of inclusive ranges.
pub fn parse_frame_list(s: &str) -> Result<Vec<(u64, u64)>, String> {
    let mut v = Vec::new();
    for part in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let (a, b) = match part.split_once('-') {
            Some((a, b)) => (a.trim(), b.trim()),
            None => (part, part),
        };
        let a: u64 = a
            .parse()
            .map_err(|_| format!("'{part}' is not a frame number or range"))?;
        let b: u64 = b
            .parse()
            .map_err(|_| format!("'{part}' is not a frame number or range"))?;
        if a == 0 || b < a {
            return Err(format!(
                "'{part}': frames are numbered from 1, ranges go upward"
            ));
        }
        v.push((a, b));
    }
    if v.is_empty() {
        return Err("no frames given".into());
    }
    v.sort_unstable();
    Ok(v)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frame_lists() {
        assert_eq!(parse_frame_list("20,4-8"), Ok(vec![(4, 8), (20, 20)]));
        assert!(parse_frame_list("0").is_err());
        assert!(parse_frame_list("8-4").is_err());
        assert!(parse_frame_list("x").is_err());
        assert!(parse_frame_list("").is_err());
    }
}
