//! Rendering results: tables for people, JSON for scripts. Both are built from the same
//! summary and exchange views, so they never disagree.

pub mod finding_writer;
pub mod findings;
pub mod html;
pub mod json;
pub mod ladder;
pub mod table;

use crate::capture::LinkType;
use crate::capture::file::{Format, ReadEnd};
use crate::engine::{Skipped, Stats};
use crate::flow::FlowStats;
use crate::http::HttpStats;
use serde::Serialize;

/// The `tcp` object of the JSON summaries: the flow table's counters and HTTP's, under the
/// names and in the order they have always had (schema version 1).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct TcpCounters {
    pub tcp_streams: u64,
    pub http_streams: u64,
    pub duplicate_frames: u64,
    pub retransmitted_segments: u64,
    pub out_of_order_segments: u64,
    pub gap_bytes: u64,
    pub reassembly_limit_hits: u64,
    pub reassembly_total_limit_hits: u64,
    pub flow_limit_hits: u64,
    pub idle_flows_finished: u64,
    pub dormant_forgotten: u64,
    pub http_header_too_large: u64,
    pub http_too_many_headers: u64,
    pub http_bad_headers: u64,
    pub http_heads_lost: u64,
    pub http_resyncs: u64,
    pub http_pending_limit_hits: u64,
    pub http_interim_dropped: u64,
}

impl TcpCounters {
    pub fn of(f: &FlowStats, h: &HttpStats) -> TcpCounters {
        TcpCounters {
            tcp_streams: f.tcp_streams,
            http_streams: h.streams,
            duplicate_frames: f.duplicate_frames,
            retransmitted_segments: f.retransmitted_segments,
            out_of_order_segments: f.out_of_order_segments,
            gap_bytes: f.gap_bytes,
            reassembly_limit_hits: f.reassembly_limit_hits,
            reassembly_total_limit_hits: f.reassembly_total_limit_hits,
            flow_limit_hits: f.flow_limit_hits,
            idle_flows_finished: f.idle_flows_finished,
            dormant_forgotten: f.dormant_forgotten,
            http_header_too_large: h.header_too_large,
            http_too_many_headers: h.too_many_headers,
            http_bad_headers: h.bad_headers,
            http_heads_lost: h.heads_lost,
            http_resyncs: h.resyncs,
            http_pending_limit_hits: h.pending_limit_hits,
            http_interim_dropped: h.interim_dropped,
        }
    }
}

/// What was read from one capture and what happened to it.
#[derive(Clone, Debug, Serialize)]
pub struct FileSummary {
    pub path: String,
    pub format: String,
    pub link_types: Vec<String>,
    pub frames: u64,
    pub captured_bytes: u64,
    pub tcp_segments: u64,
    pub tcp_streams: u64,
    pub http_streams: u64,
    pub exchanges: u64,
    pub http_messages: u64,
    pub connection_attempts: u64,
    /// `complete`, or why reading stopped early.
    pub read: String,
    pub snaplen_truncated_frames: u64,
    pub skipped: Vec<Skipped>,
    pub tcp: TcpCounters,
    /// TLS connections (their first bytes a TLS handshake record) and how their handshakes
    /// went.
    pub tls: crate::tls::TlsStats,
    /// The TLS secrets the run had: key log files, pcapng secrets blocks, lines read.
    pub tls_keys: crate::tls::keys::KeyStoreStats,
    /// Capture times of the first frame and of the latest (for the HTML report).
    #[serde(skip)]
    pub first_ts: Option<i64>,
    #[serde(skip)]
    pub last_ts: Option<i64>,
    /// The layers' counters, for the report (the JSON has them in `tcp`).
    #[serde(skip)]
    pub flow: FlowStats,
    #[serde(skip)]
    pub http: HttpStats,
}

impl FileSummary {
    pub fn new(
        path: &str,
        format: Format,
        link_types: &[LinkType],
        stats: &Stats,
        end: &ReadEnd,
    ) -> FileSummary {
        FileSummary::of_stats(
            path.to_string(),
            format.to_string(),
            link_types.iter().map(ToString::to_string).collect(),
            stats,
            end.to_string(),
        )
    }

    /// The summary of what `stats` counted, under the given names (a live capture has no
    /// file format and does not end the way a file does).
    pub fn of_stats(
        path: String,
        format: String,
        link_types: Vec<String>,
        stats: &Stats,
        read: String,
    ) -> FileSummary {
        FileSummary {
            path,
            format,
            link_types,
            frames: stats.frames,
            captured_bytes: stats.captured_bytes,
            tcp_segments: stats.tcp_segments,
            tcp_streams: stats.flow.tcp_streams,
            http_streams: stats.http.streams,
            exchanges: stats.exchanges,
            http_messages: stats.http_messages,
            connection_attempts: stats.connection_attempts,
            read,
            snaplen_truncated_frames: stats.snaplen_truncated,
            skipped: stats.skipped(),
            tcp: TcpCounters::of(&stats.flow, &stats.http),
            first_ts: stats.first_ts,
            last_ts: stats.last_ts,
            flow: stats.flow,
            http: stats.http,
            tls: stats.tls,
            tls_keys: stats.tls_keys,
        }
    }

    /// Limits that were hit, as `(name, count)`, for the report: each layer says its own
    /// (the flow table's, HTTP's, then the flow table's dormant entries, the order of the
    /// report since the start).
    pub fn limits_hit(&self) -> Vec<(&'static str, u64)> {
        let flow = self.flow.limits_hit();
        let (tables, dormant) = flow.split_at(flow.len().min(3));
        tables
            .iter()
            .copied()
            .chain(self.http.limits_hit())
            .chain([(
                "TLS handshakes not read (a message over the limit)",
                self.tls.handshake_limit_hits,
            )])
            .chain(dormant.iter().copied())
            .filter(|(_, n)| *n > 0)
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every counter of a limit hit reaches the report: each set to its own value, each value
    /// is listed. A counter added to the flow statistics with a limit's name fails this until
    /// it is listed here and in the report.
    #[test]
    fn every_limit_hit_is_in_the_report() {
        let f = FlowStats {
            flow_limit_hits: 1,
            reassembly_limit_hits: 2,
            reassembly_total_limit_hits: 3,
            dormant_forgotten: 8,
            ..FlowStats::default()
        };
        let h = HttpStats {
            header_too_large: 4,
            too_many_headers: 5,
            pending_limit_hits: 6,
            interim_dropped: 7,
            ..HttpStats::default()
        };
        let t = TcpCounters::of(&f, &h);
        let limits = serde_json::to_value(TcpCounters::default())
            .ok()
            .and_then(|v| v.as_object().cloned())
            .map(|o| {
                o.keys()
                    .filter(|k| {
                        ["limit", "too_", "dropped", "forgotten"]
                            .iter()
                            .any(|w| k.contains(w))
                    })
                    .count()
            });
        assert_eq!(limits, Some(8));
        let summary = FileSummary {
            path: String::new(),
            format: String::new(),
            link_types: Vec::new(),
            frames: 0,
            captured_bytes: 0,
            tcp_segments: 0,
            tcp_streams: 0,
            http_streams: 0,
            exchanges: 0,
            http_messages: 0,
            connection_attempts: 0,
            read: String::new(),
            snaplen_truncated_frames: 0,
            skipped: Vec::new(),
            tcp: t,
            first_ts: None,
            last_ts: None,
            flow: f,
            http: h,
            tls: crate::tls::TlsStats {
                handshake_limit_hits: 9,
                ..Default::default()
            },
            tls_keys: Default::default(),
        };
        let mut counts: Vec<u64> = summary.limits_hit().iter().map(|(_, n)| *n).collect();
        counts.sort_unstable();
        assert_eq!(counts, (1..=9).collect::<Vec<_>>());
    }
}
