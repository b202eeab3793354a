//! Bounded tables: rule state that can never grow without limit, with what was dropped counted.

use std::collections::VecDeque;
use std::ops::{Deref, DerefMut};

/// A queue of at most `cap` items; pushing onto a full one drops the oldest and counts it.
/// Read and take items through the queue it derefs to; add them only with [`Bounded::push`].
#[derive(Debug)]
pub struct Bounded<T> {
    items: VecDeque<T>,
    cap: usize,
    /// Items dropped because the table was full.
    pub dropped: u64,
}

impl<T> Bounded<T> {
    pub fn new(cap: usize) -> Bounded<T> {
        Bounded {
            items: VecDeque::new(),
            cap: cap.max(1),
            dropped: 0,
        }
    }

    /// Adds `item`; when the table was full, the oldest item is dropped (counted) and given
    /// back, so a rule can still report what it held.
    pub fn push(&mut self, item: T) -> Option<T> {
        let evicted = if self.items.len() >= self.cap {
            self.dropped += 1;
            self.items.pop_front()
        } else {
            None
        };
        self.items.push_back(item);
        evicted
    }
}

impl<T> Default for Bounded<T> {
    /// At most [`super::super::MAX_RULE_STATE`] items.
    fn default() -> Bounded<T> {
        Bounded::new(super::super::MAX_RULE_STATE)
    }
}

impl<T> Deref for Bounded<T> {
    type Target = VecDeque<T>;
    fn deref(&self) -> &VecDeque<T> {
        &self.items
    }
}

impl<T> DerefMut for Bounded<T> {
    fn deref_mut(&mut self) -> &mut VecDeque<T> {
        &mut self.items
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_oldest_goes_and_is_counted() {
        let mut b = Bounded::new(2);
        assert_eq!(b.push(1), None);
        assert_eq!(b.push(2), None);
        assert_eq!(b.push(3), Some(1));
        assert_eq!(b.iter().copied().collect::<Vec<_>>(), [2, 3]);
        assert_eq!(b.dropped, 1);
        b.pop_front();
        assert_eq!(b.push(4), None);
        assert_eq!(b.dropped, 1);
    }
}
