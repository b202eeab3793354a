//! Repeats a rule leaves unmade: for a rule whose finding would recur with common traffic (every
//! client pings `/v2/`; a failing proxy answers every request alike), a finding that repeats an
//! earlier one within the rule's interval is counted before anything of it is built. The rule
//! set's own suppression ([`crate::rules::RuleInfo::suppress_for_ns`]) comes after a finding is
//! built; this is the same rule, applied early.

use super::bounded::Bounded;
use crate::capture::TimestampNs;

/// What a rule reported, and when (bounded; the oldest goes first), and the repeats counted.
#[derive(Debug)]
pub struct Repeats<K> {
    reported: Bounded<(K, TimestampNs)>,
    window: TimestampNs,
    /// Repeats counted, not built.
    pub count: u64,
}

impl<K: PartialEq> Repeats<K> {
    /// Repeats within `window` of a report (a rule's `suppress_for_ns`).
    pub fn new(window: Option<TimestampNs>) -> Repeats<K> {
        Repeats {
            reported: Bounded::default(),
            window: window.unwrap_or(0),
            count: 0,
        }
    }

    /// Whether `key` at `at` repeats a report within the window; counted when it does.
    pub fn repeats(&mut self, key: &K, at: TimestampNs) -> bool {
        let window = self.window;
        let repeat = self
            .reported
            .iter()
            .any(|(k, t)| k == key && at.saturating_sub(*t) < window);
        if repeat {
            self.count += 1;
        }
        repeat
    }

    /// `key` is reported at `at`: the window starts again from it.
    pub fn report(&mut self, key: K, at: TimestampNs) {
        match self.reported.iter_mut().find(|(k, _)| *k == key) {
            Some((_, t)) => *t = at,
            None => {
                self.reported.push((key, at));
            }
        }
    }

    /// Reports dropped because the table was full.
    pub fn dropped(&self) -> u64 {
        self.reported.dropped
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_repeat_within_the_window_is_counted_and_the_window_restarts_after_it() {
        let mut r = Repeats::new(Some(60));
        assert!(!r.repeats(&"a", 0));
        r.report("a", 0);
        assert!(r.repeats(&"a", 10));
        assert!(!r.repeats(&"b", 10));
        assert!(!r.repeats(&"a", 100));
        r.report("a", 100);
        assert!(r.repeats(&"a", 150));
        assert_eq!(r.count, 2);
    }
}
