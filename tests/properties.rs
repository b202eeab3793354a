//! Property tests: reassembly gives the same bytes whatever the reordering, duplication and
//! overlap of the segments, with gaps exactly where bytes are missing; HTTP parsing gives the
//! same messages wherever the byte stream is split.

use capdiag::flow::reassembly::{Chunk, Reassembler};
use capdiag::http::parser::{Origin, parse_ahead};
use capdiag::http::{BodyPolicy, HttpConn, Limits};
use proptest::prelude::*;

/// What a reassembler delivered, laid out by stream offset: `Some(byte)` delivered, `None` gap.
fn deliver(
    isn: u32,
    len: usize,
    sends: &[(usize, usize)],
    data: &[u8],
) -> (Vec<Option<u8>>, usize) {
    let mut r = Reassembler::new(1 << 30);
    let mut out: Vec<Option<u8>> = Vec::new();
    let mut fins = 0;
    let mut push = |c: Chunk<'_>| match c {
        Chunk::Data { bytes, .. } => out.extend(bytes.iter().map(|b| Some(*b))),
        Chunk::Gap { len } => out.extend(std::iter::repeat_n(None, len as usize)),
        Chunk::Fin { .. } => fins += 1,
    };
    r.segment(isn, true, false, false, &[], 0, 1, &mut push);
    for (i, &(start, end)) in sends.iter().enumerate() {
        let seq = isn.wrapping_add(1).wrapping_add(start as u32);
        let bytes = &data[start..end];
        r.segment(
            seq,
            false,
            false,
            false,
            bytes,
            bytes.len() as u32,
            i as u64 + 2,
            &mut push,
        );
    }
    let fin_seq = isn.wrapping_add(1).wrapping_add(len as u32);
    r.segment(fin_seq, false, true, false, &[], 0, 999, &mut push);
    r.flush(&mut push);
    (out, fins)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(400))]

    #[test]
    fn reassembly_is_order_independent_and_gaps_are_exact(
        data in proptest::collection::vec(any::<u8>(), 1..600),
        cuts in proptest::collection::vec(any::<u16>(), 0..40),
        extra in proptest::collection::vec((any::<u16>(), any::<u16>()), 0..20),
        dropped in proptest::collection::vec(any::<bool>(), 0..40),
        order in any::<u64>(),
        isn in prop_oneof![Just(u32::MAX - 3), Just(u32::MAX - 300), any::<u32>()],
    ) {
        let len = data.len();
        // Segments: the stream cut at random points, some dropped, plus random overlapping
        // ranges (retransmissions with different boundaries), each possibly sent twice.
        let mut points: Vec<usize> = cuts.iter().map(|c| *c as usize % len).collect();
        points.push(0);
        points.push(len);
        points.sort_unstable();
        points.dedup();
        let mut sends: Vec<(usize, usize)> = points
            .windows(2)
            .enumerate()
            .filter(|(i, _)| !dropped.get(*i).copied().unwrap_or(false))
            .map(|(_, w)| (w[0], w[1]))
            .collect();
        for (a, b) in &extra {
            let (a, b) = (*a as usize % len, *b as usize % (len + 1));
            if a < b {
                sends.push((a, b));
            }
        }
        let dup: Vec<(usize, usize)> = sends.iter().step_by(3).copied().collect();
        sends.extend(dup);
        // A deterministic shuffle from `order`.
        let mut state = order | 1;
        for i in (1..sends.len()).rev() {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            sends.swap(i, (state % (i as u64 + 1)) as usize);
        }
        let (out, fins) = deliver(isn, len, &sends, &data);
        prop_assert_eq!(fins, 1);
        prop_assert_eq!(out.len(), len);
        let mut covered = vec![false; len];
        for (a, b) in &sends {
            for c in &mut covered[*a..*b] {
                *c = true;
            }
        }
        for (i, o) in out.iter().enumerate() {
            match o {
                Some(b) => {
                    prop_assert!(covered[i], "byte {} delivered but never sent", i);
                    prop_assert_eq!(*b, data[i], "byte {} differs", i);
                }
                None => prop_assert!(!covered[i], "byte {} was sent but reported missing", i),
            }
        }
    }
}

const REQUESTS: &[&[u8]] = &[
    b"GET /v2/ HTTP/1.1\r\nHost: r\r\n\r\n",
    b"PUT /v2/a/blobs/uploads/1 HTTP/1.1\r\nContent-Length: 5\r\n\r\nhello",
    b"POST /u HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n3;ext\r\nabc\r\n2\r\nde\r\n0\r\nTrailer: x\r\n\r\n",
    b"HEAD /v2/a/blobs/sha256:1 HTTP/1.1\r\n\r\n",
    b"GET /x HTTP/1.0\n\n",
    // A body that is itself a header block: where a piece starts with it, a parse made ahead
    // from the piece's start must not be taken for the message after it.
    b"POST /m HTTP/1.1\r\nContent-Length: 18\r\n\r\nGET / HTTP/1.1\r\n\r\n",
    // Framing headers that disagree: chunked wins over two differing lengths (both noted).
    b"POST /c HTTP/1.1\r\nContent-Length: 3\r\nTransfer-Encoding: gzip, chunked\r\ncontent-length: 3, 4\r\n\r\n1\r\na\r\n0\r\n\r\n",
];
const RESPONSES: &[&[u8]] = &[
    b"HTTP/1.1 401 Unauthorized\r\nWww-Authenticate: Bearer realm=\"http://t/token\"\r\nContent-Length: 2\r\n\r\n{}",
    b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 201 Created\r\nContent-Length: 0\r\n\r\n",
    b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n4\r\nwxyz\r\n0\r\n\r\n",
    b"HTTP/1.1 307 Temporary Redirect\r\nLocation: http://s3/b/k?X-Amz-Signature=1\r\nContent-Length: 999\r\n\r\n",
    b"HTTP/1.1 204 No Content\r\n\r\n",
    b"HTTP/1.1 200 OK\r\nContent-Length: 18\r\n\r\nHTTP/1.1 404 X\r\n\r\n",
    b"HTTP/1.1 200 OK\r\nContent-Length: x\r\nCONTENT-LENGTH: 2\r\n\r\nok",
];

/// Feeds requests then responses, each cut at the given points; returns a summary of the
/// exchanges: method, status, body lengths, completeness.
fn exchanges(req: &[u8], resp: &[u8], req_cuts: &[usize], resp_cuts: &[usize]) -> Vec<String> {
    exchanges_offered(req, resp, req_cuts, resp_cuts, false)
}

/// As [`exchanges`]; with `ahead`, each piece's header block (if it starts with one) is parsed
/// ahead and offered to the parser, as frames prepared on the reading thread are; the summary
/// then also holds every message's start line and headers.
fn exchanges_offered(
    req: &[u8],
    resp: &[u8],
    req_cuts: &[usize],
    resp_cuts: &[usize],
    ahead: bool,
) -> Vec<String> {
    let a = "10.0.0.1:1".parse().unwrap_or_else(|_| unreachable!());
    let b = "10.0.0.2:80".parse().unwrap_or_else(|_| unreachable!());
    let limits = Limits {
        bodies: BodyPolicy::All,
        ..Limits::default()
    };
    let mut c = HttpConn::new(0, [a, b], limits, 64);
    let o = Origin {
        frame: 1,
        arrival: 1,
        ts: 0,
    };
    let feed = |c: &mut HttpConn, dir: usize, bytes: &[u8], cuts: &[usize]| {
        let mut pts: Vec<usize> = cuts.iter().map(|x| x % (bytes.len() + 1)).collect();
        pts.push(0);
        pts.push(bytes.len());
        pts.sort_unstable();
        pts.dedup();
        for w in pts.windows(2) {
            let piece = &bytes[w[0]..w[1]];
            if ahead && let Some(head) = parse_ahead(piece, limits.max_headers) {
                c.offer(dir, piece, head);
            }
            c.data(dir, piece, o);
            c.withdraw();
        }
    };
    feed(&mut c, 0, req, req_cuts);
    feed(&mut c, 1, resp, resp_cuts);
    c.close(o);
    c.take_exchanges()
        .map(|e| {
            let m = |m: Option<&capdiag::http::Message>| {
                m.map(|m| {
                    format!(
                        "{:?}/{:?}/{:?}/{:?}/{}/{}/{:?}/{:?}/{:?}",
                        m.method(),
                        m.uri(),
                        m.status(),
                        m.reason(),
                        m.body.length,
                        m.complete,
                        m.body.prefix,
                        m.headers().collect::<Vec<_>>(),
                        m.anomalies,
                    )
                })
                .unwrap_or_default()
            };
            format!(
                "{}>{}>{}",
                m(e.request.as_deref()),
                e.interim.len(),
                m(e.response.as_deref())
            )
        })
        .collect()
}

/// The client's and the server's bytes for the picked request/response pairs. (HEAD's answer
/// must be bodyless: the 307 claims 999 bytes it never sends.)
fn streams(picks: &[usize]) -> (Vec<u8>, Vec<u8>) {
    let req = picks
        .iter()
        .flat_map(|i| REQUESTS[*i].iter().copied())
        .collect();
    let resp = picks
        .iter()
        .flat_map(|i| RESPONSES[*i].iter().copied())
        .collect();
    (req, resp)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(300))]

    #[test]
    fn http_splitting_does_not_change_the_messages(
        picks in proptest::collection::vec(0..REQUESTS.len().min(RESPONSES.len()), 1..6),
        req_cuts in proptest::collection::vec(any::<usize>(), 0..30),
        resp_cuts in proptest::collection::vec(any::<usize>(), 0..30),
    ) {
        let (req, resp) = streams(&picks);
        let whole = exchanges(&req, &resp, &[], &[]);
        prop_assert_eq!(whole.len(), picks.len());
        let split = exchanges(&req, &resp, &req_cuts, &resp_cuts);
        prop_assert_eq!(split, whole);
    }

    /// Header blocks parsed ahead (on the reading thread, from the start of each segment) and
    /// offered to the parser change nothing, wherever the stream is cut.
    #[test]
    fn header_blocks_parsed_ahead_change_nothing(
        picks in proptest::collection::vec(0..REQUESTS.len().min(RESPONSES.len()), 1..6),
        req_cuts in proptest::collection::vec(any::<usize>(), 0..30),
        resp_cuts in proptest::collection::vec(any::<usize>(), 0..30),
    ) {
        let (req, resp) = streams(&picks);
        let own = exchanges_offered(&req, &resp, &req_cuts, &resp_cuts, false);
        let offered = exchanges_offered(&req, &resp, &req_cuts, &resp_cuts, true);
        prop_assert_eq!(offered, own);
    }
}

/// A header block parsed ahead with other header limits than the parser's (10 headers parsed
/// with room for 64, offered to a parser allowed 4) is not taken: the parser counts the
/// message as having too many headers, as it does when parsing for itself.
#[test]
fn a_header_block_parsed_with_other_limits_is_not_taken() {
    let a = "10.0.0.1:1".parse().unwrap_or_else(|_| unreachable!());
    let b = "10.0.0.2:80".parse().unwrap_or_else(|_| unreachable!());
    let limits = Limits {
        max_headers: 4,
        ..Limits::default()
    };
    let req: &[u8] = b"GET / HTTP/1.1\r\nA: 1\r\nB: 2\r\nC: 3\r\nD: 4\r\nE: 5\r\nF: 6\r\nG: 7\r\nH: 8\r\nI: 9\r\nJ: 10\r\n\r\n";
    let o = Origin {
        frame: 1,
        arrival: 1,
        ts: 0,
    };
    let run = |offer: bool| {
        let mut c = HttpConn::new(0, [a, b], limits, 64);
        if offer {
            let head = parse_ahead(req, 64).unwrap_or_else(|| unreachable!());
            c.offer(0, req, head);
        }
        c.data(0, req, o);
        c.withdraw();
        c.close(o);
        (
            c.stats().parser[0].too_many_headers,
            c.take_exchanges().count(),
        )
    };
    assert_eq!(run(false), (1, 0));
    assert_eq!(run(true), run(false));
}
