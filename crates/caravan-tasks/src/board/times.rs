//! How long a contributor takes per answer, kept at the precision a requester is shown.

use std::collections::BTreeMap;

/// Steps below this are tenths of a second; from it on, whole seconds.
const TENTHS_UNTIL_MS: u32 = 60_000;

/// The times from hand-out to answer of one contributor's answers, as a count per step: a
/// tenth of a second below a minute, a whole second from a minute on (both truncated) — the
/// precision the requester's table shows them with.
///
/// Why counts, not the times: a board serves for months and keeping each time (4 bytes an
/// answer) grew without bound, while all anyone reads is the median. Rounding to a step never
/// reorders times, so the median of the steps is the step of the exact median: what is shown
/// does not change. The memory is bounded by the steps a contributor's times fall in.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct AnswerTimes {
    /// Answers per step, by step.
    counts: BTreeMap<u32, u32>,
    answers: u32,
}

impl AnswerTimes {
    /// Counts one answer that took `ms`.
    pub fn add(&mut self, ms: u32) {
        *self.counts.entry(step(ms)).or_default() += 1;
        self.answers += 1;
    }

    /// Takes back one answer that took `ms` (one counted by [`add`](Self::add) with the same
    /// time).
    pub fn remove(&mut self, ms: u32) {
        let step = step(ms);
        let Some(count) = self.counts.get_mut(&step) else {
            debug_assert!(false, "a time taken back was never counted");
            return;
        };
        *count -= 1;
        if *count == 0 {
            self.counts.remove(&step);
        }
        self.answers -= 1;
    }

    /// How many answers are counted.
    pub fn len(&self) -> u32 {
        self.answers
    }

    /// Whether no answer is counted.
    pub fn is_empty(&self) -> bool {
        self.answers == 0
    }

    /// The median time (the lower middle of an even count), truncated to its step: shown at the
    /// precision kept, it reads as the exact median would. `None` when empty.
    pub fn median_ms(&self) -> Option<u32> {
        let middle = self.answers.checked_sub(1)? / 2;
        let mut before = 0;
        for (&step, &count) in &self.counts {
            before += count;
            if before > middle {
                return Some(earliest_ms(step));
            }
        }
        debug_assert!(false, "the counts add up to the answers");
        None
    }
}

/// The step `ms` is counted in: its tenths of a second below a minute, then one step per
/// second after the last tenth. Never decreases as `ms` grows.
fn step(ms: u32) -> u32 {
    if ms < TENTHS_UNTIL_MS {
        ms / 100
    } else {
        ms / 1000 + (TENTHS_UNTIL_MS / 100 - TENTHS_UNTIL_MS / 1000)
    }
}

/// The earliest time counted in `step`.
fn earliest_ms(step: u32) -> u32 {
    if step < TENTHS_UNTIL_MS / 100 {
        step * 100
    } else {
        (step - (TENTHS_UNTIL_MS / 100 - TENTHS_UNTIL_MS / 1000)) * 1000
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn steps_are_tenths_below_a_minute_and_seconds_from_it() {
        assert_eq!([0, 99, 100, 199, 200].map(step), [0, 0, 1, 1, 2]);
        assert_eq!([59_899, 59_900, 59_999].map(step), [598, 599, 599]);
        assert_eq!([60_000, 60_999, 61_000].map(step), [600, 600, 601]);
        assert_eq!(step(u32::MAX), u32::MAX / 1000 + 540);
        for boundary in [0, 100, 200, 59_900, 60_000, 61_000, 3_600_000] {
            assert_eq!(earliest_ms(step(boundary)), boundary);
            assert_eq!(step(earliest_ms(step(boundary + 1))), step(boundary + 1));
        }
    }

    #[test]
    fn the_median_starts_unknown_and_is_the_lower_middle() {
        let mut times = AnswerTimes::default();
        assert_eq!(times.median_ms(), None);
        for ms in [9_000, 1_000, 4_000] {
            times.add(ms);
        }
        assert_eq!(times.median_ms(), Some(4_000));
        times.add(2_049);
        assert_eq!(
            times.median_ms(),
            Some(2_000),
            "2.049 s, truncated to its tenth"
        );
        times.remove(1_000);
        times.remove(2_049);
        times.add(61_500);
        assert_eq!((times.len(), times.median_ms()), (3, Some(9_000)));
        times.add(75_250);
        assert_eq!(times.median_ms(), Some(9_000));
        times.add(75_999);
        assert_eq!(
            times.median_ms(),
            Some(61_000),
            "61.5 s, truncated to its second"
        );
    }

    proptest! {
        /// Whatever is added and taken back, the median lies in the exact median's step, and
        /// the memory is one entry per step in use.
        #[test]
        fn the_median_is_in_the_exact_medians_step(
            kept in proptest::collection::vec(
                prop_oneof![0u32..70_000, any::<u32>()], 1..200),
            taken_back in proptest::collection::vec(any::<u32>(), 0..50),
        ) {
            let mut times = AnswerTimes::default();
            for &ms in kept.iter().chain(&taken_back) {
                times.add(ms);
            }
            for &ms in &taken_back {
                times.remove(ms);
            }
            let mut exact = kept.clone();
            exact.sort_unstable();
            let median = exact[(exact.len() - 1) / 2];
            prop_assert_eq!(times.len() as usize, kept.len());
            prop_assert_eq!(times.median_ms().map(step), Some(step(median)));
            let mut steps: Vec<u32> = kept.iter().map(|&ms| step(ms)).collect();
            steps.sort_unstable();
            steps.dedup();
            prop_assert_eq!(times.counts.len(), steps.len());
        }
    }
}
