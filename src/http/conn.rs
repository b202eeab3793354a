//! HTTP state of one TCP connection: a parser per direction and the pairing of their messages;
//! its counters, and the run's.

use super::exchange::Exchange;
use super::pairing::{DirSink, MAX_INTERIM, Pairing, PairingStats};
use super::parser::{HeadParsed, Limits, Origin, Parser, ParserStats};
use std::collections::VecDeque;
use std::net::SocketAddr;

/// HTTP state of one TCP connection.
pub struct HttpConn {
    parsers: [Parser; 2],
    pairing: Pairing,
}

/// Counters of one connection, for the run's statistics.
#[derive(Clone, Copy, Debug, Default)]
pub struct ConnStats {
    pub parser: [ParserStats; 2],
    pub pairing: PairingStats,
}

/// HTTP counters over all connections of a run.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct HttpStats {
    /// TCP streams that carried HTTP.
    pub streams: u64,
    /// Header blocks longer than the limit (skipped).
    pub header_too_large: u64,
    /// Messages with more header lines than the limit (skipped).
    pub too_many_headers: u64,
    /// Header blocks that did not parse (skipped).
    pub bad_headers: u64,
    /// Partial header blocks lost in a gap or at the end of the stream.
    pub heads_lost: u64,
    /// Times a parser lost sync and searched for the next message.
    pub resyncs: u64,
    /// Exchanges emitted early because too many waited for a response.
    pub pending_limit_hits: u64,
    /// 1xx responses beyond the number kept per request.
    pub interim_dropped: u64,
}

impl HttpStats {
    /// HTTP's limits, as `(what happened, times)`, hit or not.
    pub fn limits_hit(&self) -> Vec<(&'static str, u64)> {
        vec![
            (
                "HTTP header block too large (skipped)",
                self.header_too_large,
            ),
            (
                "too many HTTP header lines (skipped)",
                self.too_many_headers,
            ),
            (
                "exchanges waiting for a response (emitted early)",
                self.pending_limit_hits,
            ),
            (
                // The number in the text is the constant's.
                const {
                    assert!(MAX_INTERIM == 16);
                    "1xx responses beyond 16 per request (not kept)"
                },
                self.interim_dropped,
            ),
        ]
    }

    /// Adds a retired connection's counters.
    pub fn add(&mut self, s: &ConnStats) {
        for p in s.parser {
            self.header_too_large += p.header_too_large;
            self.too_many_headers += p.too_many_headers;
            self.bad_headers += p.bad_headers;
            self.heads_lost += p.heads_lost;
            self.resyncs += p.resyncs;
        }
        self.pending_limit_hits += s.pairing.pending_limit_hits;
        self.interim_dropped += s.pairing.interim_dropped;
    }
}

impl HttpConn {
    pub fn new(
        stream: u64,
        endpoints: [SocketAddr; 2],
        limits: Limits,
        max_pending: usize,
    ) -> HttpConn {
        HttpConn {
            parsers: [Parser::new(limits), Parser::new(limits)],
            pairing: Pairing {
                stream,
                endpoints,
                queue: VecDeque::new(),
                next_id: 0,
                current: [None, None],
                switch_protocols: None,
                max_pending,
                out: Vec::new(),
                stats: PairingStats::default(),
                now: 0,
                cut_short: false,
            },
        }
    }

    /// Direction `dir` was first seen without its SYN.
    pub fn start_midstream(&mut self, dir: usize) {
        if let Some(p) = self.parsers.get_mut(dir) {
            p.start_midstream();
        }
    }

    fn after(&mut self) {
        if let Some(d) = self.pairing.switch_protocols.take()
            && let Some(p) = self.parsers.get_mut(d)
        {
            p.tunnel_after_current();
        }
    }

    /// Offers direction `dir`'s parser a header block parsed ahead from `bytes`
    /// ([`Parser::offer`]).
    pub fn offer(&mut self, dir: usize, bytes: &[u8], head: HeadParsed) {
        if let Some(p) = self.parsers.get_mut(dir) {
            p.offer(bytes, head);
        }
    }

    /// Withdraws what was offered and not used ([`Parser::withdraw`]).
    pub fn withdraw(&mut self) {
        for p in &mut self.parsers {
            p.withdraw();
        }
    }

    // Inlined into both callers (plain HTTP, decrypted TLS), as `Parser::feed` is.
    #[inline(always)]
    pub fn data(&mut self, dir: usize, bytes: &[u8], o: Origin) {
        self.pairing.now = o.ts;
        if let Some(p) = self.parsers.get_mut(dir) {
            p.feed(
                bytes,
                o,
                &mut DirSink {
                    p: &mut self.pairing,
                    dir,
                },
            );
        }
        self.after();
    }

    pub fn gap(&mut self, dir: usize, len: u64, o: Origin) {
        self.pairing.now = o.ts;
        // Requests of the other direction still waiting may have had their answer in the gap.
        for s in self
            .pairing
            .queue
            .iter_mut()
            .filter(|s| s.client_dir != dir && s.response.is_none())
        {
            s.response_gap = true;
        }
        if let Some(p) = self.parsers.get_mut(dir) {
            p.gap(
                len,
                o,
                &mut DirSink {
                    p: &mut self.pairing,
                    dir,
                },
            );
        }
        self.after();
    }

    pub fn fin(&mut self, dir: usize, o: Origin) {
        self.pairing.now = o.ts;
        if let Some(p) = self.parsers.get_mut(dir) {
            p.fin(
                o,
                &mut DirSink {
                    p: &mut self.pairing,
                    dir,
                },
            );
        }
    }

    /// The connection is over: end both directions and emit every exchange still waiting.
    pub fn close(&mut self, o: Origin) {
        self.pairing.now = o.ts;
        for dir in 0..2 {
            if let Some(p) = self.parsers.get_mut(dir) {
                p.abort(
                    o,
                    &mut DirSink {
                        p: &mut self.pairing,
                        dir,
                    },
                );
            }
        }
        while let Some(s) = self.pairing.queue.pop_front() {
            self.pairing.emit(s);
        }
    }

    /// Whether an exchange was emitted with a message cut short.
    pub fn cut_short(&self) -> bool {
        self.pairing.cut_short
    }

    /// Neither direction is (or can become) HTTP.
    pub fn is_dead(&self) -> bool {
        self.parsers
            .iter()
            .all(|p| p.is_ignoring() && !p.in_message())
            && self.pairing.queue.is_empty()
    }

    pub fn is_http(&self) -> bool {
        self.parsers.iter().any(|p| p.is_http)
    }

    /// Whether exchanges have completed since [`HttpConn::take_exchanges`] last took them.
    pub fn has_exchanges(&self) -> bool {
        !self.pairing.out.is_empty()
    }

    /// Completed exchanges, in the order they completed.
    pub fn take_exchanges(&mut self) -> std::vec::Drain<'_, Exchange> {
        self.pairing.out.drain(..)
    }

    pub fn stats(&self) -> ConnStats {
        ConnStats {
            parser: [self.parsers[0].stats, self.parsers[1].stats],
            pairing: self.pairing.stats,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::http::message::{Anomaly, Message};

    const C: usize = 0;
    const S: usize = 1;

    fn conn() -> HttpConn {
        let a: SocketAddr = "10.0.0.1:40000".parse().unwrap_or_else(|_| unreachable!());
        let b: SocketAddr = "10.0.0.2:80".parse().unwrap_or_else(|_| unreachable!());
        let limits = Limits {
            bodies: crate::http::BodyPolicy::All,
            ..Limits::default()
        };
        HttpConn::new(7, [a, b], limits, 1024)
    }

    fn o(frame: u64) -> Origin {
        Origin {
            frame,
            arrival: frame,
            ts: frame as i64 * 1000,
        }
    }

    /// Feeds `(direction, frame, bytes)` steps and returns the exchanges, closing at the end.
    fn run(steps: &[(usize, u64, &[u8])]) -> Vec<Exchange> {
        let mut c = conn();
        let mut last = 0;
        for &(dir, frame, bytes) in steps {
            c.data(dir, bytes, o(frame));
            last = frame;
        }
        c.close(o(last + 1));
        c.take_exchanges().collect()
    }

    /// `"GET@3>200@5"`: request method and frame, then the final status and frame; `*` marks
    /// an incomplete message, `-` a missing one.
    fn brief(ex: &[Exchange]) -> Vec<String> {
        let m = |m: Option<&Message>| match m {
            None => "-".to_string(),
            Some(m) => format!(
                "{}@{}{}",
                m.method()
                    .map_or_else(|| m.status().unwrap_or(0).to_string(), str::to_string),
                m.frame,
                if m.complete { "" } else { "*" }
            ),
        };
        ex.iter()
            .map(|e| {
                let interim: String = e
                    .interim
                    .iter()
                    .map(|i| format!("{}+", m(Some(i))))
                    .collect();
                format!(
                    "{}>{}{}",
                    m(e.request.as_deref()),
                    interim,
                    m(e.response.as_deref())
                )
            })
            .collect()
    }

    #[test]
    fn simple_exchange_with_content_length() {
        let ex = run(&[
            (C, 4, b"GET /v2/ HTTP/1.1\r\nHost: reg\r\n\r\n"),
            (
                S,
                6,
                b"HTTP/1.1 401 Unauthorized\r\nContent-Length: 5\r\n\r\nab",
            ),
            (S, 7, b"cde"),
        ]);
        assert_eq!(brief(&ex), ["GET@4>401@7"]);
        let resp = ex
            .first()
            .and_then(|e| e.response.as_ref())
            .expect("response");
        assert_eq!(resp.first_frame, 6);
        assert_eq!(resp.body.prefix, b"abcde");
        assert_eq!(
            ex.first()
                .and_then(|e| e.request.as_ref())
                .and_then(|r| r.header("HOST")),
            Some(&b"reg"[..])
        );
    }

    #[test]
    fn splitting_the_stream_anywhere_gives_the_same_messages() {
        let req: &[u8] = b"POST /u HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n4;x=y\r\nabcd\r\n0\r\nT: 1\r\n\r\nGET /n HTTP/1.1\r\n\r\n";
        let resp: &[u8] = b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 201 Created\r\nContent-Length: 2\r\n\r\nokHTTP/1.1 204 No Content\r\n\r\n";
        let whole = brief(&run(&[(C, 1, req), (S, 2, resp)]));
        assert_eq!(whole, ["POST@1>100@2+201@2", "GET@1>204@2"]);
        for cut in 1..req.len() {
            let (a, b) = req.split_at(cut);
            for cut2 in [1, 20, 30, resp.len() - 1] {
                let (x, y) = resp.split_at(cut2);
                let got = run(&[(C, 1, a), (C, 1, b), (S, 2, x), (S, 2, y)]);
                assert_eq!(
                    brief(&got),
                    whole,
                    "request split at {cut}, response at {cut2}"
                );
                let body = &got
                    .first()
                    .and_then(|e| e.request.as_ref())
                    .expect("req")
                    .body;
                assert_eq!(body.prefix, b"abcd");
            }
        }
    }

    #[test]
    fn message_frame_is_the_frame_of_its_last_byte() {
        let ex = run(&[
            (C, 1, b"GET / HTTP/1.1\r\n"),
            (C, 2, b"Host: x\r\n\r\n"),
            (
                S,
                3,
                b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n",
            ),
            (S, 5, b"0\r\n\r\n"),
        ]);
        assert_eq!(brief(&ex), ["GET@2>200@5"]);
        let r = ex
            .first()
            .and_then(|e| e.request.as_ref())
            .expect("request");
        assert_eq!((r.first_frame, r.frame), (1, 2));
    }

    #[test]
    fn bodyless_responses_head_204_304() {
        let ex = run(&[
            (
                C,
                1,
                b"HEAD /a HTTP/1.1\r\n\r\nGET /b HTTP/1.1\r\n\r\nGET /c HTTP/1.1\r\n\r\n",
            ),
            (S, 2, b"HTTP/1.1 200 OK\r\nContent-Length: 999\r\n\r\n"),
            (
                S,
                3,
                b"HTTP/1.1 304 Not Modified\r\nContent-Length: 10\r\n\r\n",
            ),
            (S, 4, b"HTTP/1.1 204 No Content\r\n\r\n"),
        ]);
        assert_eq!(brief(&ex), ["HEAD@1>200@2", "GET@1>304@3", "GET@1>204@4"]);
    }

    #[test]
    fn body_until_close_ends_at_the_fin() {
        let mut c = conn();
        c.data(C, b"GET / HTTP/1.0\r\n\r\n", o(1));
        c.data(S, b"HTTP/1.0 200 OK\r\n\r\nsome body", o(2));
        c.fin(S, o(4));
        c.close(o(5));
        let ex: Vec<_> = c.take_exchanges().collect();
        assert_eq!(brief(&ex), ["GET@1>200@4"]);
    }

    #[test]
    fn reset_mid_body_is_incomplete() {
        let ex = run(&[
            (C, 1, b"GET / HTTP/1.1\r\n\r\n"),
            (
                S,
                2,
                b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\npartial",
            ),
        ]);
        assert_eq!(brief(&ex), ["GET@1>200@2*"]);
    }

    #[test]
    fn response_without_request_is_kept() {
        let mut c = conn();
        c.start_midstream(C);
        c.start_midstream(S);
        c.data(
            S,
            b"tail of a body\r\nHTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n",
            o(3),
        );
        c.close(o(4));
        let ex: Vec<_> = c.take_exchanges().collect();
        assert_eq!(brief(&ex), ["->404@3"]);
        assert_eq!(ex.first().map(|e| e.client.port()), Some(40000));
    }

    #[test]
    fn gap_in_a_length_body_completes_it_with_the_gap_counted() {
        let mut c = conn();
        c.data(C, b"GET / HTTP/1.1\r\n\r\n", o(1));
        c.data(C, b"GET /2 HTTP/1.1\r\n\r\n", o(2));
        c.data(S, b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nab", o(3));
        c.gap(S, 5, o(4));
        c.data(S, b"fghHTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n", o(5));
        c.close(o(6));
        let ex: Vec<_> = c.take_exchanges().collect();
        assert_eq!(brief(&ex), ["GET@1>200@5", "GET@2>200@5"]);
        let r = ex
            .first()
            .and_then(|e| e.response.as_ref())
            .expect("response");
        assert_eq!((r.body.length, r.body.missing), (10, 5));
        assert!(r.anomalies.contains(&Anomaly::BodyGap));
    }

    #[test]
    fn resynchronises_after_a_gap_in_headers() {
        let mut c = conn();
        c.data(C, b"GET /a HTTP/1.1\r\nHo", o(1));
        c.gap(C, 100, o(2));
        c.data(C, b"garbage\r\nmore\r\nGET /b HTTP/1.1\r\n\r\n", o(3));
        c.close(o(4));
        let ex: Vec<_> = c.take_exchanges().collect();
        assert_eq!(brief(&ex), ["GET@3>-"]);
    }

    #[test]
    fn chunked_framing_anomalies() {
        let ex = run(&[
            (C, 1, b"GET / HTTP/1.1\r\n\r\n"),
            (
                S,
                2,
                b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\nzz\r\n",
            ),
        ]);
        assert_eq!(brief(&ex), ["GET@1>200@2*"]);
        let r = ex
            .first()
            .and_then(|e| e.response.as_ref())
            .expect("response");
        assert!(r.anomalies.contains(&Anomaly::ContentLengthAndChunked));
        assert!(r.anomalies.contains(&Anomaly::BadChunkSize));
    }

    #[test]
    fn conflicting_and_bad_content_lengths() {
        let ex = run(&[
            (
                C,
                1,
                b"POST / HTTP/1.1\r\nContent-Length: 2\r\nContent-Length: 5\r\n\r\nab",
            ),
            (S, 2, b"HTTP/1.1 400 Bad\r\nContent-Length: -1\r\n\r\nxyz"),
        ]);
        assert_eq!(brief(&ex), ["POST@1>400@2*"]);
        let e = ex.first().expect("exchange");
        let req = e.request.as_ref().expect("request");
        assert!(req.anomalies.contains(&Anomaly::ConflictingContentLength));
        let resp = e.response.as_ref().expect("response");
        assert!(resp.anomalies.contains(&Anomaly::BadContentLength));
        assert_eq!(
            resp.body.length, 3,
            "a bad length in a response means read to the close"
        );
    }

    #[test]
    fn upgrade_stops_parsing_both_directions() {
        let ex = run(&[
            (C, 1, b"GET /ws HTTP/1.1\r\nUpgrade: websocket\r\n\r\n"),
            (
                S,
                2,
                b"HTTP/1.1 101 Switching Protocols\r\n\r\n\x81\x05hello HTTP/1.1 200 OK\r\n\r\n",
            ),
            (C, 3, b"GET /not-http HTTP/1.1\r\n\r\n"),
        ]);
        assert_eq!(brief(&ex), ["GET@1>101@2"]);
    }

    #[test]
    fn connect_then_tunnel() {
        let ex = run(&[
            (C, 1, b"CONNECT s3:443 HTTP/1.1\r\n\r\n"),
            (S, 2, b"HTTP/1.1 200 Connection established\r\n\r\n"),
            (C, 3, b"\x16\x03\x01 GET / HTTP/1.1\r\n\r\n"),
        ]);
        assert_eq!(brief(&ex), ["CONNECT@1>200@2"]);
    }

    #[test]
    fn lower_case_version_and_malformed_request_line() {
        let ex = run(&[
            (C, 1, b"GET /HTTP/1.1\nHost: x\n\n"),
            (
                S,
                2,
                b"http/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n",
            ),
        ]);
        assert_eq!(brief(&ex), ["GET@1>400@2"]);
        let e = ex.first().expect("exchange");
        assert!(
            e.request
                .as_ref()
                .is_some_and(|r| r.anomalies.contains(&Anomaly::MalformedStartLine))
        );
        assert!(
            e.response
                .as_ref()
                .is_some_and(|r| r.anomalies.contains(&Anomaly::LowerCaseVersion))
        );
    }

    #[test]
    fn not_http_is_ignored() {
        let mut c = conn();
        c.data(C, b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03\n", o(1));
        c.data(S, b"SSH-2.0-OpenSSH_9.2\r\n", o(2));
        assert!(c.is_dead());
        c.close(o(3));
        assert_eq!(c.take_exchanges().count(), 0);
    }

    #[test]
    fn header_limits_are_counted() {
        let limits = Limits {
            max_header_bytes: 64,
            max_headers: 4,
            body_prefix: 4,
            bodies: crate::http::BodyPolicy::All,
        };
        let a: SocketAddr = "10.0.0.1:1".parse().unwrap_or_else(|_| unreachable!());
        let mut c = HttpConn::new(0, [a, a], limits, 8);
        let mut big = b"GET / HTTP/1.1\r\n".to_vec();
        big.extend(std::iter::repeat_n(b'a', 100));
        c.data(C, &big, o(1));
        c.data(
            C,
            b"\r\n\r\nGET /many HTTP/1.1\r\na: 1\r\nb: 2\r\nc: 3\r\nd: 4\r\ne: 5\r\n\r\n",
            o(2),
        );
        c.data(
            C,
            b"POST /x HTTP/1.1\r\nContent-Length: 10\r\n\r\n0123456789",
            o(3),
        );
        c.close(o(4));
        let ex: Vec<_> = c.take_exchanges().collect();
        assert_eq!(brief(&ex), ["POST@3>-"]);
        let st = c.stats().parser[C];
        assert_eq!((st.header_too_large, st.too_many_headers), (1, 1));
        let body = &ex
            .first()
            .and_then(|e| e.request.as_ref())
            .expect("request")
            .body;
        assert_eq!((body.prefix.as_slice(), body.length), (&b"0123"[..], 10));
    }

    #[test]
    fn pending_limit_emits_oldest_unanswered() {
        let a: SocketAddr = "10.0.0.1:1".parse().unwrap_or_else(|_| unreachable!());
        let mut c = HttpConn::new(0, [a, a], Limits::default(), 2);
        for i in 1..=5u64 {
            c.data(C, b"GET / HTTP/1.1\r\n\r\n", o(i));
        }
        let early: Vec<_> = c.take_exchanges().collect();
        assert_eq!(brief(&early), ["GET@1>-", "GET@2>-", "GET@3>-"]);
        assert_eq!(c.stats().pairing.pending_limit_hits, 3);
    }

    /// A request whose body never ends keeps its exchange open; responses without a request
    /// queue up behind it. The bound holds all the same: the oldest of them are handed on,
    /// counted, and the open request stays.
    #[test]
    fn pending_limit_holds_behind_a_request_that_never_ends() {
        let a: SocketAddr = "10.0.0.1:1".parse().unwrap_or_else(|_| unreachable!());
        let mut c = HttpConn::new(0, [a, a], Limits::default(), 4);
        c.data(
            C,
            b"PUT /blob HTTP/1.1\r\nContent-Length: 100000000000\r\n\r\nxx",
            o(1),
        );
        for i in 2..=21u64 {
            c.data(
                S,
                b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n",
                o(i),
            );
            assert!(c.pairing.queue.len() <= 4 + 2, "{}", c.pairing.queue.len());
        }
        let early: Vec<_> = c.take_exchanges().collect();
        assert_eq!(early.len(), 16);
        assert_eq!(brief(&early).first().map(String::as_str), Some("->400@3"));
        assert_eq!(brief(&early).last().map(String::as_str), Some("->400@18"));
        assert_eq!(c.stats().pairing.pending_limit_hits, 16);
        c.close(o(22));
        let rest: Vec<_> = c.take_exchanges().collect();
        assert_eq!(
            brief(&rest),
            ["PUT@1*>400@2", "->400@19", "->400@20", "->400@21"]
        );
    }

    /// A request answered by endless `102 Processing` before its final response keeps the
    /// first [`MAX_INTERIM`] of them and counts the rest.
    #[test]
    fn interim_responses_are_bounded_and_counted() {
        let mut steps: Vec<(usize, u64, &[u8])> = vec![(C, 1, b"POST /x HTTP/1.1\r\n\r\n")];
        for i in 2..=41u64 {
            steps.push((S, i, b"HTTP/1.1 102 Processing\r\n\r\n"));
        }
        steps.push((S, 42, b"HTTP/1.1 201 Created\r\nContent-Length: 0\r\n\r\n"));
        let mut c = conn();
        for &(dir, frame, bytes) in &steps {
            c.data(dir, bytes, o(frame));
        }
        let ex: Vec<_> = c.take_exchanges().collect();
        let kept: Vec<_> = ex
            .iter()
            .flat_map(|e| e.interim.iter().map(|m| m.frame))
            .collect();
        assert_eq!(kept, (2..2 + MAX_INTERIM as u64).collect::<Vec<_>>());
        assert_eq!(brief(&ex).len(), 1);
        assert!(
            brief(&ex)
                .iter()
                .all(|b| b.starts_with("POST@1>") && b.ends_with("201@42"))
        );
        assert_eq!(c.stats().pairing.interim_dropped, 40 - MAX_INTERIM as u64);
    }

    /// A first request line longer than the 8 KiB a stream's first line is awaited for (a long
    /// presigned URL), arriving in pieces, is still the request; a first line as long that is
    /// not one leaves the stream alone.
    #[test]
    fn a_long_first_request_line_in_pieces_is_a_request() {
        let mut req = b"GET /blob?X-Amz-Security-Token=".to_vec();
        req.extend(std::iter::repeat_n(b'a', 20_000));
        req.extend_from_slice(b" HTTP/1.1\r\nHost: s3\r\n\r\n");
        let mut steps: Vec<(usize, u64, &[u8])> = Vec::new();
        for (i, piece) in req.chunks(1000).enumerate() {
            steps.push((C, 1 + i as u64, piece));
        }
        steps.push((S, 100, b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"));
        let ex = run(&steps);
        assert_eq!(brief(&ex), ["GET@21>200@100"]);
        let uri = ex
            .first()
            .and_then(|e| e.request.as_ref())
            .and_then(|m| m.uri())
            .map_or(0, <[u8]>::len);
        assert_eq!(uri, "/blob?X-Amz-Security-Token=".len() + 20_000);

        let binary = vec![b'x'; 20_000];
        let mut steps: Vec<(usize, u64, &[u8])> = Vec::new();
        for (i, piece) in binary.chunks(1000).enumerate() {
            steps.push((C, 1 + i as u64, piece));
        }
        assert!(run(&steps).is_empty());
    }

    #[test]
    fn gzip_body_is_decoded() {
        use std::io::Write;
        let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        enc.write_all(b"<Error><Code>NoSuchKey</Code></Error>")
            .unwrap_or_else(|_| unreachable!());
        let gz = enc.finish().unwrap_or_else(|_| unreachable!());
        let mut resp = format!(
            "HTTP/1.1 404 Not Found\r\nContent-Encoding: gzip\r\nContent-Length: {}\r\n\r\n",
            gz.len()
        )
        .into_bytes();
        resp.extend_from_slice(&gz);
        let ex = run(&[(C, 1, b"GET /k HTTP/1.1\r\n\r\n"), (S, 2, &resp)]);
        let r = ex
            .first()
            .and_then(|e| e.response.as_ref())
            .expect("response");
        assert_eq!(
            r.decoded_body(1024),
            b"<Error><Code>NoSuchKey</Code></Error>"
        );
        assert_eq!(r.decoded_body(7), b"<Error>");
    }
}
