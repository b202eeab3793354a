//! Connection records: one per TCP connection when it ends (or the capture does), in Zeek's
//! vocabulary, so that a rule or a listing can say how a connection went without reading its
//! packets again.
//!
//! Each endpoint goes through Zeek's states (inactive, SYN sent, SYN-ACK sent, partial,
//! established, closed, reset); the record's [`ConnState`] is computed from the two as Zeek's
//! `conn_state()` does (`base/protocols/conn/main.zeek`). The history string uses Zeek's
//! letters, upper case for the originator and lower case for the responder:
//!
//! | letter | the packet | recorded |
//! | --- | --- | --- |
//! | `S` | a SYN without ACK | again when its sequence number differs from the last SYN's |
//! | `H` | a SYN-ACK | likewise |
//! | `A` | a pure ACK (no payload, no SYN, FIN or RST) | once |
//! | `D` | payload | once |
//! | `F` | FIN | again when its sequence number differs |
//! | `R` | RST | likewise |
//! | `T` | payload already seen (a retransmission) | the 1st, 10th, 100th... time |
//! | `W` | a zero window (not on a SYN or RST) | likewise |
//! | `I` | FIN and RST together | once |
//! | `Q` | SYN with FIN or RST | once |
//! | `^` | the first packet was a SYN-ACK, so the originator is its receiver | once |
//!
//! Zeek's `C` (bad checksum), `G` (content gap, see `missed_bytes`) and `X` are not written.
//! The originator is the sender of the first SYN, else the receiver of a first SYN-ACK, else
//! the sender of the first packet. Every packet of the connection is counted, as Zeek and
//! Wireshark's conversation statistics count them: duplicates, and the packets that follow its
//! close (the final ACK, a second reset), which the flow table counts in the record while it
//! holds it for them (a second or so after the close).

use crate::capture::TimestampNs;
use crate::decode::{TcpSegment, flags};
use std::net::SocketAddr;

/// Retransmitted segment sizes kept per direction.
pub const MAX_RETRANSMITTED_SIZES: usize = 8;
/// ICMP errors kept per connection.
pub const MAX_ICMP: usize = 8;

/// Zeek's `conn_state`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
pub enum ConnState {
    /// A SYN, no reply.
    S0,
    /// Established, not terminated.
    S1,
    /// Established and closed normally.
    SF,
    /// The attempt was rejected (RST).
    REJ,
    /// Established; the originator closed, no reply from the responder.
    S2,
    /// Established; the responder closed, no reply from the originator.
    S3,
    /// Established; the originator aborted (RST).
    RSTO,
    /// The responder sent a RST.
    RSTR,
    /// The originator sent a SYN then a RST; no SYN-ACK seen.
    RSTOS0,
    /// The responder sent a SYN-ACK then a RST; no SYN seen.
    RSTRH,
    /// The originator sent a SYN then a FIN; no SYN-ACK seen.
    SH,
    /// The responder sent a SYN-ACK then a FIN; no SYN seen.
    SHR,
    /// No SYN seen: midstream traffic.
    OTH,
}

impl ConnState {
    pub fn as_str(self) -> &'static str {
        match self {
            ConnState::S0 => "S0",
            ConnState::S1 => "S1",
            ConnState::SF => "SF",
            ConnState::REJ => "REJ",
            ConnState::S2 => "S2",
            ConnState::S3 => "S3",
            ConnState::RSTO => "RSTO",
            ConnState::RSTR => "RSTR",
            ConnState::RSTOS0 => "RSTOS0",
            ConnState::RSTRH => "RSTRH",
            ConnState::SH => "SH",
            ConnState::SHR => "SHR",
            ConnState::OTH => "OTH",
        }
    }
}

/// Zeek's TCP endpoint states.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum EndState {
    #[default]
    Inactive,
    SynSent,
    SynAckSent,
    Partial,
    Established,
    Closed,
    Reset,
}

/// What one direction of a connection did.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct Side {
    pub packets: u64,
    /// Payload bytes, from sequence numbers (retransmissions counted once), as Zeek counts
    /// `orig_bytes`/`resp_bytes`.
    pub bytes: u64,
    /// Bytes never captured (holes in the stream), when its bytes were reassembled.
    pub missed_bytes: u64,
    /// Segments whose payload had been seen already.
    pub retransmitted_segments: u64,
    /// The payload sizes of those segments, distinct, ascending, at most
    /// [`MAX_RETRANSMITTED_SIZES`].
    pub retransmitted_sizes: Vec<u32>,
    /// The largest payload of one segment.
    pub max_segment: u32,
    /// The MSS option of its SYN or SYN-ACK.
    pub mss: Option<u16>,
    /// Times it went from a non-zero to a zero window.
    pub zero_window_episodes: u64,
}

/// An ICMP error about the connection (destination unreachable, fragmentation needed, packet
/// too big), from a router on the path or the peer.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
pub struct IcmpNote {
    pub frame: u64,
    /// Whose packet it quotes: true for the originator's.
    pub about_orig: bool,
    pub reporter: std::net::IpAddr,
    /// ICMP (v4) or ICMPv6 type and code.
    pub kind: u8,
    pub code: u8,
    pub v6: bool,
    /// The MTU it announces (fragmentation needed, packet too big).
    pub mtu: Option<u32>,
}

/// One connection, when it ended.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct ConnRecord {
    /// Wireshark's `tcp.stream`.
    pub stream: u64,
    pub orig: SocketAddr,
    pub resp: SocketAddr,
    pub first_frame: u64,
    pub last_frame: u64,
    pub first_ts: TimestampNs,
    pub last_ts: TimestampNs,
    pub conn_state: ConnState,
    pub history: String,
    /// The application protocols its first bytes showed (Zeek's `service`): `http`, `tls`,
    /// `tls,http` (a TLS client answered in plain HTTP), or none.
    pub service: Option<&'static str>,
    pub orig_side: Side,
    pub resp_side: Side,
    /// ICMP errors about it, at most [`MAX_ICMP`] (`icmp_dropped` more).
    pub icmp: Vec<IcmpNote>,
    pub icmp_dropped: u64,
    /// This record continues an earlier one of the same stream, which ended when the
    /// connection closed or went idle: late packets woke it. Its originator and endpoint
    /// states carry on from the earlier record; its counts and history are of the packets
    /// since.
    pub resumed: bool,
}

/// What a record leaves for a later one of the same stream ([`Recorder::resume`]): three
/// bytes, kept while the stream is dormant.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Resume {
    orig: Option<u8>,
    states: [EndState; 2],
}

/// One direction's running state.
#[derive(Clone, Debug, Default)]
struct Dir {
    state: EndState,
    side: Side,
    /// Sequence number before the first payload byte (the SYN's, or one less than the first
    /// seen), and the highest end of payload seen, relative to it.
    base: Option<u32>,
    high: u32,
    last_seq: [Option<u32>; 4],
    zero_window: bool,
    retransmissions: u64,
    zero_windows: u64,
    letters: u16,
}

/// Letters recorded once (bits of `Dir::letters`).
const ONCE_A: u16 = 1;
const ONCE_D: u16 = 2;
const ONCE_I: u16 = 4;
const ONCE_Q: u16 = 8;

/// Builds a [`ConnRecord`] from a connection's packets, given by direction (`0` from the lower
/// endpoint of the flow key, as in the flow table).
#[derive(Clone, Debug)]
pub struct Recorder {
    stream: u64,
    ends: [SocketAddr; 2],
    /// The originator's direction, set by the first packet.
    orig: Option<usize>,
    dirs: [Dir; 2],
    history: String,
    first_frame: u64,
    last_frame: u64,
    first_ts: TimestampNs,
    last_ts: TimestampNs,
    icmp: Vec<IcmpNote>,
    icmp_dropped: u64,
    resumed: bool,
    service: Option<&'static str>,
}

/// Whether `n` is 1, 10, 100...: the counts at which Zeek writes a repeated letter again.
fn power_of_ten(n: u64) -> bool {
    let mut p = 1;
    while p < n {
        p = p.saturating_mul(10);
    }
    p == n
}

impl Recorder {
    pub fn new(stream: u64, ends: [SocketAddr; 2]) -> Recorder {
        Recorder {
            stream,
            ends,
            orig: None,
            dirs: [Dir::default(), Dir::default()],
            history: String::new(),
            first_frame: 0,
            last_frame: 0,
            first_ts: 0,
            last_ts: 0,
            icmp: Vec::new(),
            icmp_dropped: 0,
            resumed: false,
            service: None,
        }
    }

    /// What the connection's consumer saw it carry.
    pub fn set_service(&mut self, service: Option<&'static str>) {
        if service.is_some() {
            self.service = service;
        }
    }

    /// A recorder for the same stream woken after `earlier` ended.
    pub fn resume(stream: u64, ends: [SocketAddr; 2], earlier: Resume) -> Recorder {
        let mut r = Recorder::new(stream, ends);
        r.orig = earlier.orig.map(usize::from);
        for (d, s) in r.dirs.iter_mut().zip(earlier.states) {
            d.state = s;
        }
        r.resumed = true;
        r
    }

    /// What a later record of the same stream carries on from.
    pub fn to_resume(&self) -> Resume {
        Resume {
            orig: self.orig.and_then(|o| u8::try_from(o).ok()),
            states: [self.dirs[0].state, self.dirs[1].state],
        }
    }

    fn letter(&mut self, dir: usize, c: char) {
        if Some(dir) == self.orig {
            self.history.push(c.to_ascii_uppercase());
        } else {
            self.history.push(c);
        }
    }

    /// Takes one segment of direction `dir` (after duplicates from `-i any` were set aside).
    pub fn segment(&mut self, dir: usize, seg: &TcpSegment<'_>, frame: u64, ts: TimestampNs) {
        let other = 1 - dir.min(1);
        let (syn, ack, fin, rst) = (
            seg.has(flags::SYN),
            seg.has(flags::ACK),
            seg.has(flags::FIN),
            seg.has(flags::RST),
        );
        if self.first_frame == 0 {
            self.first_frame = frame;
            self.first_ts = ts;
        }
        if self.orig.is_none() {
            if syn && ack {
                self.orig = Some(other);
                self.history.push('^');
            } else {
                self.orig = Some(dir);
            }
        }
        self.last_frame = frame;
        self.last_ts = ts;
        let len = seg.payload_len;
        // Letters, in the order they happen.
        let flagged = |d: &mut Dir, i: usize| {
            let again = d.last_seq.get(i).copied().flatten() != Some(seg.seq);
            if let Some(s) = d.last_seq.get_mut(i) {
                *s = Some(seg.seq);
            }
            again
        };
        let Some(d) = self.dirs.get_mut(dir) else {
            return;
        };
        d.side.packets += 1;
        // At most one of each letter a packet can bring (q i s h f r a d t w).
        let mut letters = [0u8; 10];
        let mut nl = 0;
        let mut note = |c: u8| {
            if let Some(slot) = letters.get_mut(nl) {
                *slot = c;
                nl += 1;
            }
        };
        if syn && (fin || rst) && d.letters & ONCE_Q == 0 {
            d.letters |= ONCE_Q;
            note(b'q');
        }
        if fin && rst && d.letters & ONCE_I == 0 {
            d.letters |= ONCE_I;
            note(b'i');
        }
        if syn && !ack && flagged(d, 0) {
            note(b's');
        }
        if syn && ack && flagged(d, 1) {
            note(b'h');
        }
        if fin && flagged(d, 2) {
            note(b'f');
        }
        if rst && flagged(d, 3) {
            note(b'r');
        }
        if ack && len == 0 && !syn && !fin && !rst && d.letters & ONCE_A == 0 {
            d.letters |= ONCE_A;
            note(b'a');
        }
        if len > 0 && d.letters & ONCE_D == 0 {
            d.letters |= ONCE_D;
            note(b'd');
        }
        // Sequence space: bytes, retransmissions.
        if d.base.is_none() && !rst {
            d.base = Some(if syn {
                seg.seq
            } else {
                seg.seq.wrapping_sub(1)
            });
        }
        if let Some(base) = d.base {
            let data = if syn {
                seg.seq.wrapping_add(1)
            } else {
                seg.seq
            };
            let rel = data.wrapping_sub(base);
            // Only forward of the base (a stray segment from before it is not counted).
            if (rel as i32) > 0 && len > 0 {
                let end = rel.wrapping_add(len);
                if end <= d.high && !syn {
                    d.side.retransmitted_segments += 1;
                    d.retransmissions += 1;
                    let sizes = &mut d.side.retransmitted_sizes;
                    if let Err(i) = sizes.binary_search(&len)
                        && sizes.len() < MAX_RETRANSMITTED_SIZES
                    {
                        sizes.insert(i, len);
                    }
                    if power_of_ten(d.retransmissions) {
                        note(b't');
                    }
                } else if end > d.high {
                    d.high = end;
                }
            }
            d.side.bytes = u64::from(d.high.saturating_sub(1));
        }
        d.side.max_segment = d.side.max_segment.max(len);
        if syn && let Some(m) = seg.mss() {
            d.side.mss = Some(m);
        }
        let zero = seg.window == 0 && !syn && !rst;
        if zero {
            if !d.zero_window {
                d.side.zero_window_episodes += 1;
            }
            d.zero_windows += 1;
            if power_of_ten(d.zero_windows) {
                note(b'w');
            }
        }
        d.zero_window = zero;
        // Endpoint states.
        if rst {
            d.state = EndState::Reset;
        } else if fin && d.state != EndState::Reset {
            d.state = EndState::Closed;
        } else if syn && !ack {
            if d.state == EndState::Inactive {
                d.state = EndState::SynSent;
            }
        } else if syn && ack {
            if d.state == EndState::Inactive {
                d.state = EndState::SynAckSent;
            }
        } else {
            match d.state {
                EndState::Inactive => d.state = EndState::Partial,
                EndState::SynSent | EndState::SynAckSent if ack => {
                    d.state = EndState::Established;
                }
                _ => {}
            }
        }
        let sent_syn = !matches!(d.state, EndState::Inactive | EndState::Partial);
        if ack
            && !syn
            && !rst
            && sent_syn
            && let Some(p) = self.dirs.get_mut(other)
            && p.state == EndState::SynAckSent
        {
            p.state = EndState::Established;
        }
        for &c in letters.get(..nl).unwrap_or_default() {
            self.letter(dir, char::from(c));
        }
    }

    /// An ICMP error about the packets of direction `dir`.
    /// A packet of direction `dir` that repeated the one before it exactly (a copy the
    /// capture took twice, or a duplicate ACK): counted as a packet, nothing else.
    pub fn duplicate(&mut self, dir: usize, frame: u64, ts: TimestampNs) {
        if let Some(d) = self.dirs.get_mut(dir) {
            d.side.packets += 1;
            self.last_frame = frame;
            self.last_ts = ts;
        }
    }

    pub fn icmp(&mut self, dir: usize, note: IcmpNote) {
        if self.icmp.len() < MAX_ICMP {
            self.icmp.push(IcmpNote {
                about_orig: Some(dir) == self.orig,
                ..note
            });
        } else {
            self.icmp_dropped += 1;
        }
    }

    /// The record, with each direction's bytes never captured (`missed`, by direction). The
    /// recorder keeps only what [`Recorder::to_resume`] needs.
    pub fn take_record(&mut self, missed: [u64; 2]) -> ConnRecord {
        let o = self.orig.unwrap_or(0).min(1);
        let r = 1 - o;
        let mut side = |i: usize| {
            let mut s = self
                .dirs
                .get_mut(i)
                .map(|d| std::mem::take(&mut d.side))
                .unwrap_or_default();
            s.missed_bytes = missed.get(i).copied().unwrap_or(0);
            s
        };
        let (orig_side, resp_side) = (side(o), side(r));
        let state = |i: usize| self.dirs.get(i).map_or(EndState::Inactive, |d| d.state);
        let end = |i: usize| self.ends.get(i).copied().unwrap_or(self.ends[0]);
        let (os, rs) = (state(o), state(r));
        ConnRecord {
            stream: self.stream,
            orig: end(o),
            resp: end(r),
            first_frame: self.first_frame,
            last_frame: self.last_frame,
            first_ts: self.first_ts,
            last_ts: self.last_ts,
            conn_state: conn_state(os, rs, orig_side.bytes, resp_side.bytes, &self.history),
            history: std::mem::take(&mut self.history),
            service: self.service,
            orig_side,
            resp_side,
            icmp: std::mem::take(&mut self.icmp),
            icmp_dropped: self.icmp_dropped,
            resumed: self.resumed,
        }
    }
}

/// Zeek's `conn_state()` for TCP.
fn conn_state(os: EndState, rs: EndState, osize: u64, rsize: u64, history: &str) -> ConnState {
    use EndState::*;
    let o_inactive = matches!(os, Inactive | Partial);
    let r_inactive = matches!(rs, Inactive | Partial);
    if rs == Reset {
        if matches!(os, SynSent | SynAckSent) || (os == Reset && osize == 0 && rsize == 0) {
            ConnState::REJ
        } else if o_inactive {
            ConnState::RSTRH
        } else {
            ConnState::RSTR
        }
    } else if os == Reset {
        if r_inactive {
            // `^?S[^HAFGIQ]*R.*`: a SYN, then a RST with nothing of those between.
            let h = history.strip_prefix('^').unwrap_or(history);
            let rsts0 = h.strip_prefix('S').is_some_and(|rest| {
                rest.find('R')
                    .is_some_and(|i| !rest[..i].contains(['H', 'A', 'F', 'G', 'I', 'Q']))
            });
            if rsts0 {
                ConnState::RSTOS0
            } else {
                ConnState::OTH
            }
        } else {
            ConnState::RSTO
        }
    } else if rs == Closed && os == Closed {
        ConnState::SF
    } else if os == Closed {
        if r_inactive {
            ConnState::SH
        } else {
            ConnState::S2
        }
    } else if rs == Closed {
        if o_inactive {
            ConnState::SHR
        } else {
            ConnState::S3
        }
    } else if os == SynSent && rs == Inactive {
        ConnState::S0
    } else if os == Established && rs == Established {
        ConnState::S1
    } else {
        ConnState::OTH
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::{IpAddr, Ipv4Addr};

    /// Runs a conversation written as packets `>` from the client (direction 0) or `<` from
    /// the server, each `FLAGS[:payload length][@seq]`, flags among S A F R P and `0` for a zero
    /// window; sequence numbers follow on by themselves unless given.
    fn run(script: &str) -> ConnRecord {
        let c = SocketAddr::new(IpAddr::V4(Ipv4Addr::new(192, 0, 2, 1)), 40000);
        let s = SocketAddr::new(IpAddr::V4(Ipv4Addr::new(192, 0, 2, 2)), 80);
        let mut rec = Recorder::new(0, [c, s]);
        let mut next = [1000u32, 5000u32];
        let payload = [0u8; 2000];
        for (i, p) in script.split_whitespace().enumerate() {
            let dir = usize::from(p.starts_with('<'));
            let p = &p[1..];
            let (p, seq) = match p.split_once('@') {
                Some((a, b)) => (a, b.parse().ok()),
                None => (p, None),
            };
            let (fl, len) = match p.split_once(':') {
                Some((a, b)) => (a, b.parse::<u32>().unwrap_or(0)),
                None => (p, 0),
            };
            let mut f = 0;
            for ch in fl.chars() {
                f |= match ch {
                    'S' => flags::SYN,
                    'A' => flags::ACK,
                    'F' => flags::FIN,
                    'R' => flags::RST,
                    'P' => flags::PSH,
                    _ => 0,
                };
            }
            let seq = seq.unwrap_or(next[dir]);
            let seg = TcpSegment {
                src: if dir == 0 { c.ip() } else { s.ip() },
                dst: if dir == 0 { s.ip() } else { c.ip() },
                sport: 0,
                dport: 0,
                seq,
                ack: 1,
                flags: f,
                window: if fl.contains('0') { 0 } else { 1000 },
                payload: &payload[..len as usize],
                payload_len: len,
                header: &[],
            };
            rec.segment(dir, &seg, i as u64 + 1, i as i64);
            let used = len + u32::from(f & (flags::SYN | flags::FIN) != 0);
            next[dir] = next[dir].max(seq.wrapping_add(used));
        }
        rec.take_record([0, 0])
    }

    fn brief(r: &ConnRecord) -> String {
        format!("{} {}", r.conn_state.as_str(), r.history)
    }

    #[test]
    fn zeek_states_and_histories() {
        // A whole exchange, closed by both.
        assert_eq!(
            brief(&run(">S <SA >A >PA:100 <A <PA:300 >FA <FA >A")),
            "SF ShADadFf"
        );
        // SYNs never answered (retransmissions have the same sequence number).
        assert_eq!(brief(&run(">S >S@1000 >S@1000")), "S0 S");
        // Refused.
        assert_eq!(brief(&run(">S <RA")), "REJ Sr");
        // Established, then reset by the server mid-transfer.
        assert_eq!(brief(&run(">S <SA >A >PA:100 <A:1400 <RA")), "RSTR ShADdr");
        // ... or by the client.
        assert_eq!(brief(&run(">S <SA >A >PA:100 <A:1400 >RA")), "RSTO ShADdR");
        // A SYN then the client's RST, no answer.
        assert_eq!(brief(&run(">S >R")), "RSTOS0 SR");
        // Established, never closed.
        assert_eq!(brief(&run(">S <SA >A >PA:10")), "S1 ShAD");
        // Closed by the client only.
        assert_eq!(brief(&run(">S <SA >A >FA")), "S2 ShAF");
        // Closed by the server only.
        assert_eq!(brief(&run(">S <SA >A <FA")), "S3 ShAf");
        // Midstream.
        assert_eq!(brief(&run(">A:100 <A >A:100")), "OTH Da");
        // The first packet seen is the SYN-ACK: the originator is its receiver.
        assert_eq!(brief(&run("<SA >A >PA:5 <FA >FA")), "SF ^hADfF");
        // SYN then FIN without an answer.
        assert_eq!(brief(&run(">S >F")), "SH SF");
    }

    #[test]
    fn retransmissions_zero_windows_and_sizes() {
        let r = run(">S <SA >A <A:1400 <A:1400 <A:1400@5001 <A:700@5001 >A0 >A0 >A <A:10");
        assert_eq!(r.history, "ShAdtW");
        assert_eq!(r.resp_side.retransmitted_segments, 2);
        assert_eq!(r.resp_side.retransmitted_sizes, vec![700, 1400]);
        assert_eq!(r.resp_side.max_segment, 1400);
        assert_eq!(r.resp_side.bytes, 2810);
        assert_eq!(r.orig_side.zero_window_episodes, 1);
        let many: String = std::iter::repeat_n("<A:100@5001 ", 12).collect();
        let r = run(&format!(">S <SA >A <A:100 {many}"));
        // The 1st and the 10th retransmission.
        assert_eq!(r.history, "ShAdtt");
        assert!(power_of_ten(1) && power_of_ten(100) && !power_of_ten(11));
    }
}
