//! Spent messages kept for reuse. Every exchange allocates its messages (a box, a header block,
//! a header index) and frees them once the rules have seen it; on a capture of small exchanges
//! that is most of the analysing thread's allocation. The engine hands each delivered
//! exchange's messages back here ([`give_back`]), and the parser builds the next ones in them
//! ([`message`], [`index`]), keeping their capacity.
//!
//! Bounded: at most [`MAX_SPARE`] messages and as many header indexes, each kept only when its
//! capacity is small ([`MAX_KEPT_HEAD`] bytes, [`MAX_KEPT_HEADERS`] entries), so that a few
//! large header blocks do not stay allocated. Nothing here is data: what does not fit is
//! freed as before. Per thread (each analysing thread has its own), so nothing is shared.

use super::message::{HeaderPos, Message, StartLine};
use crate::capture::TimestampNs;
use std::cell::RefCell;

/// Spent messages kept, at most.
pub const MAX_SPARE: usize = 64;
/// A message is kept only when its header block's capacity is at most this.
pub const MAX_KEPT_HEAD: usize = 4096;
/// A header index is kept only when its capacity is at most this many headers.
pub const MAX_KEPT_HEADERS: usize = 64;

#[derive(Default)]
struct Spare {
    // Boxes, not messages: a message is used boxed, and reusing the box is the point.
    #[allow(clippy::vec_box)]
    messages: Vec<Box<Message>>,
    indexes: Vec<Vec<HeaderPos>>,
}

thread_local! {
    static SPARE: RefCell<Spare> = RefCell::new(Spare::default());
}

/// Runs `f` on this thread's spares; `None` when they cannot be reached (while the thread
/// ends), and then nothing is reused or kept.
fn with_spare<R>(f: impl FnOnce(&mut Spare) -> R) -> Option<R> {
    SPARE
        .try_with(|s| s.try_borrow_mut().ok().map(|mut s| f(&mut s)))
        .ok()
        .flatten()
}

/// An empty header index, reused when one is spare.
pub(crate) fn index() -> Vec<HeaderPos> {
    with_spare(|s| s.indexes.pop())
        .flatten()
        .unwrap_or_default()
}

/// A message as [`Message::new`] makes it, its header block a copy of `head`, built in a
/// spent one when one is spare.
pub(crate) fn message(
    start: StartLine,
    head: &[u8],
    headers: Vec<HeaderPos>,
    framing: Option<super::message::Framing>,
    first_frame: u64,
    ts: TimestampNs,
) -> Box<Message> {
    match with_spare(|s| s.messages.pop()).flatten() {
        Some(mut m) => {
            let mut block = m.take_head();
            block.clear();
            block.extend_from_slice(head);
            *m = Message::new(start, block, headers, framing, first_frame, ts);
            m
        }
        None => Box::new(Message::new(
            start,
            head.to_vec(),
            headers,
            framing,
            first_frame,
            ts,
        )),
    }
}

/// Takes back a message the rules are done with.
pub(crate) fn give_back(mut m: Box<Message>) {
    let mut headers = m.take_headers();
    let keep_message = m.head_capacity() <= MAX_KEPT_HEAD;
    let keep_index = headers.capacity() > 0 && headers.capacity() <= MAX_KEPT_HEADERS;
    with_spare(|s| {
        if keep_index && s.indexes.len() < MAX_SPARE {
            headers.clear();
            s.indexes.push(headers);
        }
        if keep_message && s.messages.len() < MAX_SPARE {
            m.release();
            s.messages.push(m);
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::http::parser::parse_ahead;

    fn parsed(block: &[u8]) -> Box<Message> {
        let h = parse_ahead(block, 100).unwrap_or_else(|| unreachable!());
        let (start, len, headers, framing) = h.into_parts();
        message(start, &block[..len], headers, Some(framing), 7, 9)
    }

    /// A message built in a spent one is the message built afresh: nothing of the spent
    /// one (its headers, body, anomalies, frames) shows through.
    #[test]
    fn a_reused_message_keeps_nothing_of_the_last() {
        let big = b"HTTP/1.1 500 Internal Server Error\r\nContent-Type: text/html\r\nContent-Length: 5\r\nX-A: 1\r\nX-B: 2\r\n\r\n";
        let small = b"GET /v2/ HTTP/1.1\r\nHost: r\r\n\r\n";
        let fresh = format!("{:?}", parsed(small));
        let mut spent = parsed(big);
        spent.body.prefix.extend_from_slice(b"<html>");
        spent.body.length = 6;
        spent.complete = true;
        spent.note(crate::http::Anomaly::BodyGap);
        spent.frame = 99;
        let spent_at = &*spent as *const Message as usize;
        give_back(spent);
        let reused = parsed(small);
        assert_eq!(
            &*reused as *const Message as usize, spent_at,
            "the spent box is reused"
        );
        assert_eq!(format!("{reused:?}"), fresh);
    }

    /// Large header blocks are freed, not kept; the count kept is bounded.
    #[test]
    fn what_is_kept_is_bounded() {
        SPARE.with_borrow_mut(|s| *s = Spare::default());
        let mut long = b"GET / HTTP/1.1\r\nX: ".to_vec();
        long.extend(std::iter::repeat_n(b'a', MAX_KEPT_HEAD));
        long.extend_from_slice(b"\r\n\r\n");
        give_back(parsed(&long));
        assert_eq!(SPARE.with_borrow(|s| s.messages.len()), 0);
        let many: Vec<_> = (0..MAX_SPARE + 10)
            .map(|_| parsed(b"GET / HTTP/1.1\r\nHost: r\r\n\r\n"))
            .collect();
        many.into_iter().for_each(give_back);
        SPARE.with_borrow(|s| {
            assert_eq!(s.messages.len(), MAX_SPARE);
            assert_eq!(s.indexes.len(), MAX_SPARE);
        });
    }
}
