//! Deadline queues: items a rule holds until a deadline in capture time, bounded.

use super::bounded::Bounded;
use crate::capture::TimestampNs;
use std::collections::VecDeque;
use std::ops::{Deref, DerefMut};

/// Items waiting for a deadline each computes for itself (it may move as evidence arrives), at
/// most [`crate::rules::MAX_RULE_STATE`]; a rule's `next_deadline`, `on_tick` and `finish`
/// become [`Waiting::next`], [`Waiting::take_due`] and [`Waiting::drain`].
#[derive(Debug)]
pub struct Waiting<T> {
    items: Bounded<T>,
    deadline: fn(&T) -> TimestampNs,
}

impl<T> Waiting<T> {
    pub fn new(deadline: fn(&T) -> TimestampNs) -> Waiting<T> {
        Waiting {
            items: Bounded::default(),
            deadline,
        }
    }

    /// Adds `item`; when the queue was full, the oldest is dropped (counted) and given back, so
    /// that the rule can still report it.
    pub fn push(&mut self, item: T) -> Option<T> {
        self.items.push(item)
    }

    /// The earliest deadline.
    pub fn next(&self) -> Option<TimestampNs> {
        if self.items.is_empty() {
            return None;
        }
        self.items.iter().map(self.deadline).min()
    }

    /// The items whose deadline is `now` or earlier, in the order they came.
    pub fn take_due(&mut self, now: TimestampNs) -> Vec<T> {
        let deadline = self.deadline;
        let (due, keep): (VecDeque<T>, VecDeque<T>) = std::mem::take(&mut *self.items)
            .into_iter()
            .partition(|t| now >= deadline(t));
        *self.items = keep;
        due.into()
    }

    /// Every item, in the order they came (the end of the input).
    pub fn drain(&mut self) -> Vec<T> {
        std::mem::take(&mut *self.items).into()
    }

    /// Items dropped because the queue was full.
    pub fn dropped(&self) -> u64 {
        self.items.dropped
    }
}

impl<T> Deref for Waiting<T> {
    type Target = VecDeque<T>;
    fn deref(&self) -> &VecDeque<T> {
        &self.items
    }
}

impl<T> DerefMut for Waiting<T> {
    fn deref_mut(&mut self) -> &mut VecDeque<T> {
        &mut self.items
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn due_items_leave_in_order() {
        let mut w: Waiting<(u32, TimestampNs)> = Waiting::new(|t| t.1);
        for (i, d) in [(1, 30), (2, 10), (3, 20), (4, 40)] {
            assert!(w.push((i, d)).is_none());
        }
        assert_eq!(w.next(), Some(10));
        assert_eq!(w.take_due(25), [(2, 10), (3, 20)]);
        assert_eq!(w.next(), Some(30));
        // A deadline that moved.
        if let Some(t) = w.front_mut() {
            t.1 = 50;
        }
        assert_eq!(w.take_due(45), [(4, 40)]);
        assert_eq!(w.drain(), [(1, 50)]);
        assert_eq!(w.next(), None);
    }
}
