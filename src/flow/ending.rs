//! How a connection ended while its consumer was in the middle of a message (a body cut
//! short): what each side did last. Made only for such connections.

use crate::capture::TimestampNs;
use serde::Serialize;
use std::net::SocketAddr;

/// What one side of a connection did last.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct EndSide {
    /// Its first FIN: frame and time.
    pub fin: Option<(u64, TimestampNs)>,
    /// Its first RST: frame and time.
    pub rst: Option<(u64, TimestampNs)>,
    /// When it last sent payload.
    pub last_data_ts: Option<TimestampNs>,
    /// Since when it has been advertising a zero window, if it still was at the end (its
    /// receive buffer full: the application on that side not reading).
    pub zero_window_since: Option<TimestampNs>,
}

impl EndSide {
    /// The side's first FIN or RST, whichever came first: (frame, time, is a reset).
    pub fn closed(&self) -> Option<(u64, TimestampNs, bool)> {
        match (self.fin, self.rst) {
            (Some(f), Some(r)) if r.1 < f.1 => Some((r.0, r.1, true)),
            (Some(f), _) => Some((f.0, f.1, false)),
            (None, Some(r)) => Some((r.0, r.1, true)),
            (None, None) => None,
        }
    }
}

/// A connection that ended with a message cut short.
#[derive(Clone, Debug, Serialize)]
pub struct Ending {
    /// Wireshark's `tcp.stream`.
    pub stream: u64,
    /// The two ends; `sides[i]` is what `ends[i]` did.
    pub ends: [SocketAddr; 2],
    pub sides: [EndSide; 2],
}

impl Ending {
    /// What `addr` did, if it is one of the ends.
    pub fn side(&self, addr: SocketAddr) -> Option<&EndSide> {
        self.ends
            .iter()
            .position(|e| *e == addr)
            .and_then(|i| self.sides.get(i))
    }

    /// Which end closed first (its FIN or RST), with the frame, time and whether it was a
    /// reset; `None` when neither did (the capture or an idle timeout ended the flow).
    pub fn first_close(&self) -> Option<(SocketAddr, u64, TimestampNs, bool)> {
        self.ends
            .iter()
            .zip(&self.sides)
            .filter_map(|(e, s)| s.closed().map(|(f, t, r)| (*e, f, t, r)))
            .min_by_key(|(_, f, _, _)| *f)
    }
}
