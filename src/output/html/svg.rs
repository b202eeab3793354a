//! The report's drawings, inline SVG: a finding's ladder diagram, and the capture's timeline.
//! Colours come from the page's CSS (classes), so the drawings follow its light, dark and print
//! themes. SVG elements are always written with a closing tag (`{}`): inside HTML, a void
//! element would swallow its siblings.

use super::timeline::{Class, Timeline};
use crate::capture::TimestampNs;
use crate::finding::Finding;
use crate::output::ladder::{Ladder, fit_label, since};
use crate::text::printable;
use maud::{Markup, html};

/// Horizontal distance between two lifelines.
const COLUMN: f64 = 190.0;
/// Left margin: frame numbers and times.
const LEFT: f64 = 150.0;
/// Height of the column heads.
const HEAD: f64 = 58.0;
/// Vertical distance between two rows at the least.
const ROW: f64 = 36.0;
/// The most a gap in time adds between two rows.
const STRETCH: f64 = 150.0;
/// Gaps in time are drawn to scale when the longest is at least this long.
const SCALE_FROM_NS: TimestampNs = 300_000_000;
/// Average width of a character of the labels, in pixels (12 px sans-serif).
const CHAR: f64 = 6.6;

fn num(x: f64) -> String {
    format!("{x:.1}")
}

/// The y of each row: [`ROW`] apart, and, when the evidence spans time (retries, back-off, a
/// stall before a reset), further apart in proportion to the time between them.
fn row_ys(l: &Ladder) -> Vec<f64> {
    let gaps: Vec<TimestampNs> = l
        .rows
        .windows(2)
        .map(|w| {
            match (
                w.first().and_then(|r| r.since),
                w.get(1).and_then(|r| r.since),
            ) {
                (Some(a), Some(b)) => b.saturating_sub(a).max(0),
                _ => 0,
            }
        })
        .collect();
    let longest = gaps.iter().copied().max().unwrap_or(0);
    let mut y = HEAD + 30.0;
    let mut ys = vec![y];
    for g in gaps {
        y += ROW;
        if longest >= SCALE_FROM_NS {
            y += STRETCH * g as f64 / longest as f64;
        }
        ys.push(y);
    }
    ys
}

/// A finding's ladder diagram.
pub fn ladder(l: &Ladder, f: &Finding) -> Markup {
    let n = l.columns.len().max(2);
    let width = LEFT + (n - 1) as f64 * COLUMN + 110.0;
    let ys = row_ys(l);
    let bottom = ys.last().copied().unwrap_or(HEAD) + 26.0;
    let x = |i: usize| LEFT + i as f64 * COLUMN;
    let to_scale = l
        .rows
        .windows(2)
        .filter_map(|w| Some(w.get(1)?.since? - w.first()?.since?))
        .max()
        .is_some_and(|g| g >= SCALE_FROM_NS);
    html! {
        svg class="ladder" xmlns="http://www.w3.org/2000/svg" role="img"
            viewBox={"0 0 " (num(width)) " " (num(bottom))}
            width=(num(width)) height=(num(bottom))
            aria-label={"Ladder diagram of finding " (f.rule) " at frame " (f.key_frame)} {
            text class="axis" x="8" y="20" { "frame" }
            text class="axis" x="62" y="20" { "time" }
            @if to_scale {
                text class="axis" x="8" y="36" { "(gaps to scale)" }
            }
            @for (i, c) in l.columns.iter().enumerate() {
                g class="column" data-role=(c.role) data-addr=(c.addr()) {
                    text class="role" x=(num(x(i))) y="18" text-anchor="middle" { (c.role) }
                    text class="addr" x=(num(x(i))) y="34" text-anchor="middle" { (printable(&c.addr())) }
                    line class="lifeline" x1=(num(x(i))) y1=(num(HEAD - 14.0)) x2=(num(x(i))) y2=(num(bottom - 6.0)) {}
                }
            }
            @for (r, y) in l.rows.iter().zip(ys.iter().copied()) {
                g class={"row" @if r.key { " key" }} data-frame=(r.frame) {
                    title { "frame " (r.frame) ": " (printable(&r.what)) }
                    @if r.key {
                        rect class="keyrow" x="2" y=(num(y - 22.0)) width=(num(width - 4.0)) height="30" rx="4" {}
                    }
                    text class="frame" x="8" y=(num(y + 4.0)) { (r.frame) }
                    @if let Some(s) = r.since {
                        text class="time" x="62" y=(num(y + 4.0)) { (since(s)) }
                    }
                    @match r.arrow {
                        Some((a, b)) => {
                            @let (xa, xb) = (x(a), x(b));
                            @let dir = if xb > xa { 1.0 } else { -1.0 };
                            @let span = (xb - xa).abs();
                            @let chars = ((span - 12.0) / CHAR).max(8.0) as usize;
                            line class="arrow" x1=(num(xa)) y1=(num(y)) x2=(num(xb - dir * 9.0)) y2=(num(y)) {}
                            polygon class="head"
                                points={(num(xb)) "," (num(y)) " " (num(xb - dir * 10.0)) "," (num(y - 5.0)) " " (num(xb - dir * 10.0)) "," (num(y + 5.0))} {}
                            text class="label" x=(num((xa + xb) / 2.0)) y=(num(y - 6.0)) text-anchor="middle" {
                                (fit_label(&printable(&r.label), chars))
                            }
                        }
                        None => {
                            text class="label note" x=(num(LEFT - 10.0)) y=(num(y + 4.0)) {
                                (fit_label(&printable(&r.label), 60))
                            }
                        }
                    }
                }
            }
        }
    }
}

/// One class's rectangle of a bar: its CSS class, top and height.
type Stacked = (&'static str, f64, f64);

/// A finding marked on the timeline: its number, time, severity, rule and key frame.
pub struct Mark<'a> {
    pub n: usize,
    pub f: &'a Finding,
}

/// Width and height of the timeline.
const TW: f64 = 920.0;
const TH: f64 = 190.0;
const PLOT_L: f64 = 56.0;
const PLOT_R: f64 = 900.0;
const PLOT_T: f64 = 24.0;
const PLOT_B: f64 = 140.0;
const BARS: usize = 168;

/// The capture's exchanges over time (stacked by answer class), the findings' key frames
/// marked, from `start` to `end` (capture times).
pub fn timeline(t: &Timeline, start: TimestampNs, end: TimestampNs, marks: &[Mark<'_>]) -> Markup {
    // Spans in floating point: capture times may lie anywhere in i64 (pcapng offsets).
    let end = end.max(start.saturating_add(1));
    let span = (end as f64 - start as f64).max(1.0);
    let (origin, bar_span, bars) = t.bars(start, end, BARS);
    let peak = bars
        .iter()
        .map(|b| b.iter().sum::<u64>())
        .max()
        .unwrap_or(0)
        .max(1);
    let px_per_ns = (PLOT_R - PLOT_L) / span;
    let bw = (bar_span as f64 * px_per_ns).max(0.6);
    let bar_x =
        |i: usize| PLOT_L + (origin as f64 + i as f64 * bar_span as f64 - start as f64) * px_per_ns;
    let xt = |ts: TimestampNs| {
        PLOT_L + (PLOT_R - PLOT_L) * ((ts as f64 - start as f64) / span).clamp(0.0, 1.0)
    };
    let h = |n: u64| (PLOT_B - PLOT_T) * n as f64 / peak as f64;
    let labelled = marks.len() <= 40;
    // Each bar's rectangles, stacked from the axis up: class, top, height.
    let stacks: Vec<(usize, String, Vec<Stacked>)> = bars
        .iter()
        .enumerate()
        .filter(|(_, b)| b.iter().sum::<u64>() > 0)
        .map(|(i, b)| {
            let mut y = PLOT_B;
            let mut rects = Vec::new();
            for c in Class::ALL {
                let n = b.get(c as usize).copied().unwrap_or(0);
                if n > 0 {
                    let hh = h(n).max(1.0);
                    y -= hh;
                    rects.push((c.name().0, y, hh));
                }
            }
            (i, bar_title(b), rects)
        })
        .collect();
    html! {
        svg class="timeline" xmlns="http://www.w3.org/2000/svg" role="img"
            viewBox={"0 0 " (num(TW)) " " (num(TH))} width=(num(TW)) height=(num(TH))
            aria-label="Exchanges and failed connection attempts over time, by class, with the findings marked" {
            line class="axis-line" x1=(num(PLOT_L)) y1=(num(PLOT_B)) x2=(num(PLOT_R)) y2=(num(PLOT_B)) {}
            line class="axis-line" x1=(num(PLOT_L)) y1=(num(PLOT_T)) x2=(num(PLOT_L)) y2=(num(PLOT_B)) {}
            text class="axis" x=(num(PLOT_L - 6.0)) y=(num(PLOT_T + 4.0)) text-anchor="end" { (peak) }
            text class="axis" x=(num(PLOT_L - 6.0)) y=(num(PLOT_B)) text-anchor="end" { "0" }
            @for (i, title, rects) in &stacks {
                g class="bar" {
                    title { (title) }
                    @for (class, y, hh) in rects {
                        rect class=(class) x=(num(bar_x(*i).max(PLOT_L))) y=(num(*y))
                            width=(num((bw - 0.6).max(0.6).min(PLOT_R - bar_x(*i).max(PLOT_L)).max(0.6))) height=(num(*hh)) {}
                    }
                }
            }
            @for m in marks {
                @let x = xt(key_time(m.f));
                g class={"mark sev-" (m.f.severity.as_str())} data-finding=(m.n) data-key-frame=(m.f.key_frame) {
                    title { "#" (m.n) " " (m.f.rule) " (" (m.f.severity.as_str()) "), key frame " (m.f.key_frame) }
                    line x1=(num(x)) y1=(num(PLOT_T - 8.0)) x2=(num(x)) y2=(num(PLOT_B)) {}
                    polygon points={(num(x - 5.0)) "," (num(PLOT_T - 16.0)) " " (num(x + 5.0)) "," (num(PLOT_T - 16.0)) " " (num(x)) "," (num(PLOT_T - 8.0))} {}
                    @if labelled {
                        text class="axis" x=(num(x + 4.0)) y=(num(PLOT_B + 14.0)) { "#" (m.n) }
                    }
                }
            }
            @for (i, frac) in [0.0f64, 0.25, 0.5, 0.75, 1.0].iter().enumerate() {
                @let ts = start.saturating_add((span * frac) as TimestampNs);
                text class="axis" x=(num(xt(ts))) y=(num(PLOT_B + 30.0))
                    text-anchor=(match i { 0 => "start", 4 => "end", _ => "middle" }) {
                    "+" (since(ts.saturating_sub(start)))
                }
            }
            @for (i, c) in Class::ALL.iter().enumerate() {
                @let lx = PLOT_L + i as f64 * 140.0;
                rect class=(c.name().0) x=(num(lx)) y=(num(TH - 14.0)) width="10" height="10" {}
                text class="axis" x=(num(lx + 14.0)) y=(num(TH - 5.0)) {
                    (c.name().1) " (" (t.totals.get(*c as usize).copied().unwrap_or(0)) ")"
                }
            }
        }
    }
}

/// When the key frame was captured (the finding's time when its evidence does not say).
pub fn key_time(f: &Finding) -> TimestampNs {
    f.evidence
        .iter()
        .find(|e| e.frame == f.key_frame)
        .and_then(|e| e.time)
        .unwrap_or((f.time * 1e9) as TimestampNs)
}

fn bar_title(b: &[u64; 6]) -> String {
    Class::ALL
        .iter()
        .filter_map(|c| {
            let n = b.get(*c as usize).copied().unwrap_or(0);
            (n > 0).then(|| format!("{n} {}", c.name().1))
        })
        .collect::<Vec<_>>()
        .join(", ")
}
