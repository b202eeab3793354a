//! Ladder diagrams: a finding's evidence as packets between the parties it involves, one
//! column per party, one row per evidence frame. [`Ladder::of`] lays it out once; the terminal
//! ([`Ladder::text`]) and the HTML report (`html::svg`) draw it.

use crate::capture::TimestampNs;
use crate::finding::{Evidence, Finding, Party};
use crate::text::printable;
use std::fmt::Write as _;
use std::net::IpAddr;

/// Rows drawn per diagram; the rest are counted under it.
pub const MAX_ROWS: usize = 40;
/// Columns drawn per diagram: a packet of a party beyond them is a row without an arrow,
/// counted ([`Ladder::without_column`]).
pub const MAX_COLUMNS: usize = 8;

/// One party of the diagram. A client is one column per address (its ports change from one
/// connection to the next); any other party is one column per address and port.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Column {
    pub role: &'static str,
    pub ip: IpAddr,
    /// Every port the party used in the evidence, in order of appearance.
    pub ports: Vec<u16>,
}

impl Column {
    /// `10.0.0.1:5000`, `10.0.0.1` (no port, or a client that used several), `[::1]:80`.
    pub fn addr(&self) -> String {
        match self.ports.as_slice() {
            [p] => Party {
                ip: self.ip,
                port: Some(*p),
                role: self.role,
            }
            .addr(),
            _ => self.ip.to_string(),
        }
    }

    fn holds(&self, p: &Party) -> bool {
        if p.is_client() {
            self.role == Party::CLIENT && self.ip == p.ip
        } else {
            self.role != Party::CLIENT && self.ip == p.ip && self.ports.first().copied() == p.port
        }
    }
}

/// One evidence frame.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Row {
    pub frame: u64,
    pub stream: Option<u64>,
    /// The finding's key frame.
    pub key: bool,
    /// Sender and receiver columns; `None` for evidence that is not a packet between two
    /// parties drawn (a note).
    pub arrow: Option<(usize, usize)>,
    /// Nanoseconds since the diagram's first timed row.
    pub since: Option<TimestampNs>,
    /// What the frame is, in a few words, as the capture had it (not yet escaped).
    pub label: String,
    /// What the frame shows, in full.
    pub what: String,
}

/// A finding's evidence laid out.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Ladder {
    pub columns: Vec<Column>,
    pub rows: Vec<Row>,
    /// Capture time of the first timed row.
    pub origin: Option<TimestampNs>,
    /// Evidence frames not drawn ([`MAX_ROWS`]).
    pub rows_left_out: usize,
    /// Packets drawn without an arrow because a party of theirs is beyond [`MAX_COLUMNS`].
    pub without_column: usize,
}

impl Ladder {
    /// The diagram of `f`'s evidence; `None` when no evidence is a packet between parties.
    pub fn of(f: &Finding) -> Option<Ladder> {
        Ladder::of_evidence(&f.evidence, f.key_frame)
    }

    /// The diagram of `evidence` (in frame order). Two pieces of evidence of one frame make
    /// one row when they are the same packet between the same parties (a FIN on the segment
    /// with the last bytes): its labels joined; otherwise a row each.
    pub fn of_evidence(evidence: &[Evidence], key_frame: u64) -> Option<Ladder> {
        if !evidence.iter().any(|e| e.from.is_some() && e.to.is_some()) {
            return None;
        }
        let mut columns: Vec<Column> = Vec::new();
        let mut rows: Vec<Row> = Vec::new();
        let mut left_out: Vec<u64> = Vec::new();
        let mut without_column = 0;
        let origin = evidence.iter().filter_map(|e| e.time).min();
        for e in evidence {
            let label = if e.label.is_empty() {
                &e.what
            } else {
                &e.label
            };
            let drawn = rows.iter().any(|r| r.frame == e.frame);
            if rows.len() >= MAX_ROWS && !drawn {
                if !left_out.contains(&e.frame) {
                    left_out.push(e.frame);
                }
                continue;
            }
            let arrow = match (e.from, e.to) {
                (Some(a), Some(b)) => {
                    match (column_of(&mut columns, &a), column_of(&mut columns, &b)) {
                        (Some(x), Some(y)) if x != y => Some((x, y)),
                        _ => {
                            without_column += 1;
                            None
                        }
                    }
                }
                _ => None,
            };
            if let Some(r) = rows.iter_mut().find(|r| {
                r.frame == e.frame && (r.arrow == arrow || r.arrow.is_none() || arrow.is_none())
            }) {
                r.arrow = r.arrow.or(arrow);
                if r.since.is_none() {
                    r.since = e.time.zip(origin).map(|(t, o)| t.saturating_sub(o));
                }
                if !r.label.split(" + ").any(|l| l == label.as_str()) {
                    r.label = format!("{} + {label}", r.label);
                    r.what = format!("{}; {}", r.what, e.what);
                }
                continue;
            }
            rows.push(Row {
                frame: e.frame,
                stream: e.stream,
                key: e.frame == key_frame,
                arrow,
                since: e.time.zip(origin).map(|(t, o)| t.saturating_sub(o)),
                label: label.clone(),
                what: e.what.clone(),
            });
        }
        Some(Ladder {
            columns,
            rows,
            origin,
            rows_left_out: left_out.len(),
            without_column,
        })
    }

    /// The diagram for a terminal `width` columns wide, box-drawing characters or `ascii`.
    /// Every text from the capture is shown [`printable`].
    pub fn text(&self, width: usize, ascii: bool) -> String {
        let g = if ascii { &ASCII } else { &UTF8 };
        let n = self.columns.len();
        let frame_w = self
            .rows
            .iter()
            .map(|r| r.frame.to_string().len())
            .max()
            .unwrap_or(1);
        // "  " + frame + key mark + " " + time (9) + " ".
        let left = 2 + frame_w + 1 + 1 + 9 + 1;
        // Room for the messages first (up to 44 columns), the lanes share the rest; 8 columns
        // fit in 80.
        let min_message = 16;
        let want = self
            .rows
            .iter()
            .map(|r| printable(&r.label).chars().count())
            .max()
            .unwrap_or(0)
            .clamp(min_message, 44);
        let spacing = if n < 2 {
            1
        } else {
            (width.saturating_sub(left + want + 2) / (n - 1)).clamp(4, 22)
        };
        let lanes = (n.max(1) - 1) * spacing + 1;
        let message_at = left + lanes + 2;
        let message_w = width.saturating_sub(message_at).max(min_message);
        let mut out = String::new();
        // Heads: the roles, then the addresses when each fits its lane.
        let fits = |s: &str, i: usize| i + 1 == n || s.chars().count() < spacing;
        let roles: Vec<String> = self.columns.iter().map(|c| c.role.to_string()).collect();
        let addrs: Vec<String> = self.columns.iter().map(Column::addr).collect();
        let addrs_fit = addrs.iter().enumerate().all(|(i, a)| fits(a, i));
        let cut = if ascii { '~' } else { '…' };
        out.push_str(&head_line(
            (left, spacing, width),
            &roles,
            "frame",
            frame_w,
            cut,
        ));
        if addrs_fit {
            out.push_str(&head_line((left, spacing, width), &addrs, "", frame_w, cut));
        }
        for r in &self.rows {
            let mut line = String::new();
            let _ = write!(
                line,
                "  {:>frame_w$}{} {:>9} ",
                r.frame,
                if r.key { g.key } else { ' ' },
                r.since.map(since).unwrap_or_default()
            );
            line.push_str(&lanes_line(n, spacing, r.arrow, g));
            line.push_str("  ");
            line.push_str(&if ascii {
                // Its arrows spelled out first; the `…` a shortening adds becomes `...`.
                fit_label(
                    &ascii_only(&printable(&r.label)),
                    message_w.saturating_sub(2),
                )
            } else {
                fit_label(&printable(&r.label), message_w)
            });
            out.push_str(line.trim_end());
            out.push('\n');
        }
        if self.without_column > 0 {
            let _ = writeln!(
                out,
                "  {} packet{} drawn without an arrow: more than {MAX_COLUMNS} parties",
                self.without_column,
                if self.without_column == 1 { "" } else { "s" }
            );
        }
        if self.rows_left_out > 0 {
            let _ = writeln!(
                out,
                "  … {} more evidence frame{} (in the table below)",
                self.rows_left_out,
                if self.rows_left_out == 1 { "" } else { "s" }
            );
        }
        if !addrs_fit {
            // Each column's name whole on one line.
            let mut line = String::from("  columns:");
            for (i, c) in self.columns.iter().enumerate() {
                let item = format!(" {} {} {}", i + 1, c.role, c.addr());
                if line.chars().count() + item.chars().count() + 2 > width && line.len() > 12 {
                    out.push_str(&printable(&line));
                    out.push('\n');
                    line = "          ".to_string();
                }
                line.push_str(&item);
                if i + 1 < self.columns.len() {
                    line.push_str(" ·");
                }
            }
            out.push_str(&printable(&line));
            out.push('\n');
        }
        let _ = writeln!(
            out,
            "  {} key frame · time since the first frame shown",
            g.key
        );
        if ascii { ascii_only(&out) } else { out }
    }
}

/// `s` in ASCII: arrows and ellipses spelled out, any other character beyond ASCII escaped.
pub fn ascii_only(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '→' => out.push_str("->"),
            '…' => out.push_str("..."),
            '·' => out.push('-'),
            c if c.is_ascii() => out.push(c),
            c => out.push_str(&c.escape_unicode().to_string()),
        }
    }
    out
}

/// The column of party `p`, added when new (`None` past [`MAX_COLUMNS`]).
fn column_of(columns: &mut Vec<Column>, p: &Party) -> Option<usize> {
    if let Some(i) = columns.iter().position(|c| c.holds(p)) {
        if let (Some(c), Some(port)) = (columns.get_mut(i), p.port)
            && !c.ports.contains(&port)
            && c.ports.len() < 64
        {
            c.ports.push(port);
        }
        return Some(i);
    }
    if columns.len() == MAX_COLUMNS {
        return None;
    }
    columns.push(Column {
        role: p.role,
        ip: p.ip,
        ports: p.port.into_iter().collect(),
    });
    Some(columns.len() - 1)
}

/// `0.000s`, `12.345s`, `123.4s`, `12m05s`.
pub fn since(ns: TimestampNs) -> String {
    let s = ns as f64 / 1e9;
    if s < 100.0 {
        format!("{s:.3}s")
    } else if s < 1000.0 {
        format!("{s:.1}s")
    } else {
        let m = (s / 60.0) as u64;
        format!("{m}m{:02}s", (s - m as f64 * 60.0) as u64)
    }
}

struct Glyphs {
    life: char,
    line: char,
    cross: char,
    start_right: char,
    start_left: char,
    head_right: char,
    head_left: char,
    key: char,
}

const UTF8: Glyphs = Glyphs {
    life: '│',
    line: '─',
    cross: '┼',
    start_right: '├',
    start_left: '┤',
    head_right: '▶',
    head_left: '◀',
    key: '*',
};

const ASCII: Glyphs = Glyphs {
    life: '|',
    line: '-',
    cross: '+',
    start_right: '+',
    start_left: '+',
    head_right: '>',
    head_left: '<',
    key: '*',
};

/// The lifelines of `n` columns `spacing` apart, with an arrow between two of them.
fn lanes_line(n: usize, spacing: usize, arrow: Option<(usize, usize)>, g: &Glyphs) -> String {
    let width = (n.max(1) - 1) * spacing + 1;
    let mut cells: Vec<char> = (0..width)
        .map(|x| if x % spacing == 0 { g.life } else { ' ' })
        .collect();
    if let Some((from, to)) = arrow {
        let (a, b) = (from.min(to) * spacing, from.max(to) * spacing);
        for (x, c) in cells.iter_mut().enumerate().take(b).skip(a + 1) {
            *c = if x % spacing == 0 { g.cross } else { g.line };
        }
        if from < to {
            set(&mut cells, a, g.start_right);
            set(&mut cells, b - 1, g.head_right);
        } else {
            set(&mut cells, b, g.start_left);
            set(&mut cells, a + 1, g.head_left);
        }
    }
    cells.into_iter().collect()
}

fn set(cells: &mut [char], i: usize, c: char) {
    if let Some(x) = cells.get_mut(i) {
        *x = c;
    }
}

/// A head line: `texts` each at its column, cut to fit before the next.
/// (`cut` marks a text cut short.)
fn head_line(
    (left, spacing, width): (usize, usize, usize),
    texts: &[String],
    first: &str,
    frame_w: usize,
    cut: char,
) -> String {
    let mut line = format!("  {first:>frame_w$}");
    while line.chars().count() < left {
        line.push(' ');
    }
    for (i, t) in texts.iter().enumerate() {
        let t = printable(t);
        let at = left + i * spacing;
        let room = if i + 1 == texts.len() {
            width.saturating_sub(at).clamp(4, 40)
        } else {
            spacing - 1
        };
        let shown: String = if t.chars().count() > room {
            let mut s: String = t.chars().take(room.saturating_sub(1)).collect();
            s.push(cut);
            s
        } else {
            t.to_string()
        };
        while line.chars().count() < at {
            line.push(' ');
        }
        line.push_str(&shown);
    }
    let mut line = line.trim_end().to_string();
    line.push('\n');
    line
}

/// `label` in at most `max` characters: its longest word (a path, a URL) shortened in the
/// middle first, so the method and the status stay whole; then cut at the end.
pub fn fit_label(label: &str, max: usize) -> String {
    let n = label.chars().count();
    if n <= max {
        return label.to_string();
    }
    let over = n - max;
    // A path or URL first; else the longest word.
    let longest = label
        .split(' ')
        .enumerate()
        .max_by_key(|(_, w)| (w.contains('/'), w.chars().count()));
    if let Some((i, w)) = longest {
        let len = w.chars().count();
        if len >= over + 12 {
            let words: Vec<String> = label
                .split(' ')
                .enumerate()
                .map(|(j, x)| {
                    if j == i {
                        crate::text::shorten(x, len - over)
                    } else {
                        x.to_string()
                    }
                })
                .collect();
            return words.join(" ");
        }
    }
    crate::text::shorten(label, max)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::SocketAddr;

    fn packet(frame: u64, from: Party, to: Party, t: i64, label: &str) -> Evidence {
        Evidence::packet(frame, Some(0), (from, to), t, label, label)
    }

    fn addr(s: &str) -> SocketAddr {
        s.parse().unwrap_or_else(|_| unreachable!())
    }

    #[test]
    fn columns_per_client_address_and_per_service() {
        let c1 = Party::client(addr("10.0.0.1:40000"));
        let c2 = Party::client(addr("10.0.0.1:40002"));
        let reg = Party {
            role: "registry",
            ..Party::server(addr("10.0.0.2:5000"))
        };
        let s3 = Party {
            role: "S3 endpoint",
            ..Party::server(addr("10.0.0.3:9000"))
        };
        let ev = vec![
            packet(4, c1, reg, 1_000_000_000, "GET /v2/x"),
            packet(6, reg, c1, 1_002_000_000, "307 → http://s3/x"),
            packet(11, c2, s3, 1_010_000_000, "GET /x"),
            packet(13, s3, c2, 1_020_000_000, "403 SignatureDoesNotMatch"),
        ];
        let l = Ladder::of_evidence(&ev, 13).unwrap_or_else(|| unreachable!());
        assert_eq!(l.columns.len(), 3);
        assert_eq!(l.columns[0].addr(), "10.0.0.1");
        assert_eq!(l.columns[0].ports, vec![40000, 40002]);
        assert_eq!(l.columns[2].addr(), "10.0.0.3:9000");
        let arrows: Vec<_> = l.rows.iter().map(|r| r.arrow).collect();
        assert_eq!(
            arrows,
            vec![Some((0, 1)), Some((1, 0)), Some((0, 2)), Some((2, 0))]
        );
        assert_eq!(l.rows[3].since, Some(20_000_000));
        let t = l.text(80, false);
        assert!(t.lines().all(|x| x.chars().count() <= 80), "{t}");
        assert!(t.contains("13* "), "{t}");
        assert!(t.contains("├─────"), "{t}");
        assert!(t.contains("403 SignatureDoesNotMatch"), "{t}");
        let a = l.text(80, true);
        assert!(a.is_ascii(), "{a}");
        assert!(a.contains("+-----"), "{a}");
    }

    #[test]
    fn long_paths_shortened_in_the_middle_not_the_status() {
        let s = fit_label(
            "GET /v2/library/alpine/blobs/sha256:4bc9d1d1c4f3c1d2e3f4a5b6c7d8e9f0a1b2c3d4e5f6",
            30,
        );
        assert_eq!(s.chars().count(), 30);
        assert!(s.starts_with("GET /v2/"), "{s}");
        assert!(s.ends_with("e5f6"), "{s}");
        let s = fit_label("403 SignatureDoesNotMatch", 30);
        assert_eq!(s, "403 SignatureDoesNotMatch");
    }

    #[test]
    fn eight_parties_fit_80_columns() {
        let ev: Vec<Evidence> = (0..8u16)
            .map(|i| {
                let c = Party::client(addr(&format!("10.0.0.{}:4000{i}", i + 1)));
                let s = Party::server(addr(&format!("[2001:db8::{}]:{}", i + 1, 5000 + i)));
                packet(
                    u64::from(i) + 1,
                    c,
                    s,
                    1_000_000_000,
                    "GET /v2/library/alpine/manifests/latest",
                )
            })
            .collect();
        let l = Ladder::of_evidence(&ev, 1).unwrap_or_else(|| unreachable!());
        assert_eq!(l.columns.len(), MAX_COLUMNS);
        assert_eq!(l.without_column, 4);
        for ascii in [false, true] {
            let t = l.text(80, ascii);
            for line in t.lines() {
                assert!(
                    line.chars().count() <= 80,
                    "{} columns: {line}\n{t}",
                    line.chars().count()
                );
            }
            assert!(t.contains("4 packets drawn without an arrow"), "{t}");
        }
    }

    #[test]
    fn one_packet_said_twice_is_one_row() {
        let c = Party::client(addr("10.0.0.1:40000"));
        let s = Party::server(addr("10.0.0.2:5000"));
        let ev = vec![
            packet(5, c, s, 1, "GET /x"),
            packet(9, s, c, 2, "last body bytes (1 KiB)"),
            packet(9, s, c, 2, "FIN"),
            packet(9, c, s, 2, "odd"),
        ];
        let l = Ladder::of_evidence(&ev, 9).unwrap_or_else(|| unreachable!());
        let labels: Vec<&str> = l.rows.iter().map(|r| r.label.as_str()).collect();
        assert_eq!(
            labels,
            vec!["GET /x", "last body bytes (1 KiB) + FIN", "odd"]
        );
        assert_eq!(l.rows_left_out, 0);
    }

    #[test]
    fn arrows_cross_the_lifelines_between() {
        let g = &UTF8;
        assert_eq!(lanes_line(3, 4, Some((0, 2)), g), "├───┼──▶│");
        assert_eq!(lanes_line(3, 4, Some((2, 1)), g), "│   │◀──┤");
        assert_eq!(lanes_line(3, 4, None, g), "│   │   │");
    }
}
