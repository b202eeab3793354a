//! Rendering results: tables for people, JSON for scripts. Both are built from the same
//! summary and exchange views, so they never disagree.

pub mod findings;
pub mod json;
pub mod table;

use crate::capture::LinkType;
use crate::capture::file::{Format, ReadEnd};
use crate::engine::{Skipped, Stats};
use crate::flow::FlowStats;
use serde::Serialize;

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
    pub tcp: FlowStats,
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
            http_streams: stats.flow.http_streams,
            exchanges: stats.exchanges,
            http_messages: stats.http_messages,
            connection_attempts: stats.connection_attempts,
            read,
            snaplen_truncated_frames: stats.snaplen_truncated,
            skipped: stats.skipped(),
            tcp: stats.flow,
        }
    }

    /// Limits that were hit, as `(name, count)`, for the report.
    pub fn limits_hit(&self) -> Vec<(&'static str, u64)> {
        let t = &self.tcp;
        [
            ("flow table full (flows finished early)", t.flow_limit_hits),
            (
                "out-of-order buffer full (holes declared lost)",
                t.reassembly_limit_hits,
            ),
            (
                "out-of-order buffers of all flows full (holes declared lost)",
                t.reassembly_total_limit_hits,
            ),
            (
                "HTTP header block too large (skipped)",
                t.http_header_too_large,
            ),
            (
                "too many HTTP header lines (skipped)",
                t.http_too_many_headers,
            ),
            (
                "exchanges waiting for a response (emitted early)",
                t.http_pending_limit_hits,
            ),
            (
                // The number in the text is the constant's.
                const {
                    assert!(crate::http::exchange::MAX_INTERIM == 16);
                    "1xx responses beyond 16 per request (not kept)"
                },
                t.http_interim_dropped,
            ),
            ("dormant flows forgotten", t.dormant_forgotten),
        ]
        .into_iter()
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
        let t = FlowStats {
            flow_limit_hits: 1,
            reassembly_limit_hits: 2,
            reassembly_total_limit_hits: 3,
            http_header_too_large: 4,
            http_too_many_headers: 5,
            http_pending_limit_hits: 6,
            http_interim_dropped: 7,
            dormant_forgotten: 8,
            ..FlowStats::default()
        };
        let limits = serde_json::to_value(FlowStats::default())
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
        };
        let mut counts: Vec<u64> = summary.limits_hit().iter().map(|(_, n)| *n).collect();
        counts.sort_unstable();
        assert_eq!(counts, (1..=8).collect::<Vec<_>>());
    }
}
