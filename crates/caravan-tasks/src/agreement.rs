//! Chance-corrected agreement between workers over a project's judgments.
//!
//! Both metrics use every judgment of every item that has at least two (a single judgment cannot
//! agree or disagree with anything) and treat labels as nominal. Both are `None` when undefined:
//! no item has two judgments, or only one label was ever used (no disagreement is possible, so
//! there is nothing for chance to explain).

use crate::answers::Answers;
use std::collections::BTreeMap;

/// Fleiss' kappa, generalised to a varying number of judgments per item: mean observed pairwise
/// agreement per item against the agreement expected from the overall label proportions.
pub fn fleiss_kappa(answers: &Answers) -> Option<f64> {
    tally_of(answers).fleiss_kappa()
}

/// Krippendorff's alpha for nominal data, from the coincidence matrix: `1 − D_o / D_e`, where
/// `D_o` is the observed share of disagreeing pairs and `D_e` the share expected by chance.
pub fn krippendorff_alpha(answers: &Answers) -> Option<f64> {
    tally_of(answers).krippendorff_alpha()
}

/// What both measures need of a set of items, kept as exact integer sums so that an item's
/// judgments can change (one more, one taken back) at the cost of that item alone: no walk
/// over the others, and no rounding that builds up over millions of changes.
///
/// An item enters as its row of judgments per label (`L` names a label). Items with fewer
/// than two judgments change nothing: a single judgment cannot agree or disagree.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AgreementTally<L> {
    /// Per number of judgments `n` an item has (n ≥ 2): over those items, the sum of
    /// `c·(c−1)` across their labels (ordered pairs that agree), and how many items.
    by_size: BTreeMap<u64, (u64, u64)>,
    /// Judgments per label over the items with at least two.
    label_totals: BTreeMap<L, u64>,
}

impl<L: Ord + Clone> Default for AgreementTally<L> {
    fn default() -> Self {
        AgreementTally {
            by_size: BTreeMap::new(),
            label_totals: BTreeMap::new(),
        }
    }
}

impl<L: Ord + Clone> AgreementTally<L> {
    /// Counts an item whose judgments per label are `row` (labels without judgments may be
    /// left out or given as 0).
    pub fn add_item(&mut self, row: &[(L, u64)]) {
        let n: u64 = row.iter().map(|(_, c)| c).sum();
        if n < 2 {
            return;
        }
        let entry = self.by_size.entry(n).or_default();
        entry.0 += agreeing_pairs(row);
        entry.1 += 1;
        for (label, count) in row.iter().filter(|(_, c)| *c > 0) {
            *self.label_totals.entry(label.clone()).or_default() += count;
        }
    }

    /// Takes back an item added with exactly this `row`.
    pub fn remove_item(&mut self, row: &[(L, u64)]) {
        let n: u64 = row.iter().map(|(_, c)| c).sum();
        if n < 2 {
            return;
        }
        let entry = self
            .by_size
            .get_mut(&n)
            .expect("an item is removed with the row it was added with");
        entry.0 -= agreeing_pairs(row);
        entry.1 -= 1;
        if entry.1 == 0 {
            debug_assert_eq!(entry.0, 0, "no pairs are left without items");
            self.by_size.remove(&n);
        }
        for (label, count) in row.iter().filter(|(_, c)| *c > 0) {
            let total = self
                .label_totals
                .get_mut(label)
                .expect("an item is removed with the row it was added with");
            *total -= count;
            if *total == 0 {
                self.label_totals.remove(label);
            }
        }
    }

    /// Fleiss' kappa over the items counted (see [`fleiss_kappa`]); `None` when no item has two
    /// judgments or only one label was used.
    pub fn fleiss_kappa(&self) -> Option<f64> {
        let items: u64 = self.by_size.values().map(|(_, items)| items).sum();
        if items == 0 {
            return None;
        }
        let observed: f64 = self
            .by_size
            .iter()
            .map(|(&n, &(pairs, _))| pairs as f64 / (n * (n - 1)) as f64)
            .sum();
        let total = self.total() as f64;
        let expected: f64 = self
            .label_totals
            .values()
            .map(|&t| (t as f64 / total).powi(2))
            .sum();
        if expected >= 1.0 {
            return None;
        }
        Some((observed / items as f64 - expected) / (1.0 - expected))
    }

    /// Krippendorff's alpha over the items counted (see [`krippendorff_alpha`]); `None` when
    /// no item has two judgments or only one label was used.
    pub fn krippendorff_alpha(&self) -> Option<f64> {
        let n = self.total() as f64;
        if n < 2.0 {
            return None;
        }
        let coincident_same: f64 = self
            .by_size
            .iter()
            .map(|(&m, &(pairs, _))| pairs as f64 / (m - 1) as f64)
            .sum();
        let observed_disagreement = n - coincident_same;
        let expected_disagreement = (n * n
            - self
                .label_totals
                .values()
                .map(|&c| (c as f64).powi(2))
                .sum::<f64>())
            / (n - 1.0);
        if expected_disagreement <= 0.0 {
            return None;
        }
        Some(1.0 - observed_disagreement / expected_disagreement)
    }

    /// Judgments on the items counted.
    fn total(&self) -> u64 {
        self.label_totals.values().sum()
    }
}

/// Ordered pairs of an item's judgments that agree: `c·(c−1)` summed over its labels.
fn agreeing_pairs<L>(row: &[(L, u64)]) -> u64 {
    row.iter().map(|(_, c)| c * c.saturating_sub(1)).sum()
}

/// Every item of `answers` in one tally, labels by their index.
fn tally_of(answers: &Answers) -> AgreementTally<usize> {
    let k = answers.label_count();
    let mut counts = vec![0u64; answers.item_count() * k];
    for j in answers.judgments() {
        counts[j.item as usize * k + j.label as usize] += 1;
    }
    let mut tally = AgreementTally::default();
    let mut row = Vec::with_capacity(k);
    for item in counts.chunks_exact(k) {
        row.clear();
        row.extend(item.iter().copied().enumerate());
        tally.add_item(&row);
    }
    tally
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        /// Taking items back leaves exactly the tally of the items that stayed, whatever the
        /// order: the sums are integers, so nothing drifts.
        #[test]
        fn removing_items_leaves_the_tally_of_the_rest(
            items in proptest::collection::vec(
                (proptest::collection::vec((0u8..4, 0u64..6), 0..4), any::<bool>()),
                0..40,
            )
        ) {
            let rows: Vec<(Vec<(u8, u64)>, bool)> = items;
            let mut churned = AgreementTally::default();
            let mut kept = AgreementTally::default();
            for (row, _) in &rows {
                churned.add_item(&dedup(row));
            }
            for (row, stays) in &rows {
                if *stays {
                    kept.add_item(&dedup(row));
                } else {
                    churned.remove_item(&dedup(row));
                }
            }
            prop_assert_eq!(&churned, &kept);
            prop_assert_eq!(churned.fleiss_kappa(), kept.fleiss_kappa());
            prop_assert_eq!(churned.krippendorff_alpha(), kept.krippendorff_alpha());
        }
    }

    /// A row names each label once.
    fn dedup(row: &[(u8, u64)]) -> Vec<(u8, u64)> {
        let mut merged: BTreeMap<u8, u64> = BTreeMap::new();
        for &(label, count) in row {
            *merged.entry(label).or_default() += count;
        }
        merged.into_iter().collect()
    }

    /// Fleiss (1971) via the worked example on Wikipedia's "Fleiss' kappa" page: 10 subjects,
    /// 14 raters, 5 categories, κ = 0.210.
    #[test]
    fn fleiss_matches_the_textbook_example() {
        let table = [
            [0, 0, 0, 0, 14],
            [0, 2, 6, 4, 2],
            [0, 0, 3, 5, 6],
            [0, 3, 9, 2, 0],
            [2, 2, 8, 1, 1],
            [7, 7, 0, 0, 0],
            [3, 2, 6, 3, 0],
            [2, 5, 3, 2, 2],
            [6, 5, 2, 1, 0],
            [0, 2, 2, 3, 7],
        ];
        let mut answers = Answers::new((1..=5).map(|c| c.to_string()).collect()).unwrap();
        for (subject, row) in table.iter().enumerate() {
            let mut rater = 0;
            for (category, &count) in row.iter().enumerate() {
                for _ in 0..count {
                    rater += 1;
                    let label = (category + 1).to_string();
                    answers
                        .push(&subject.to_string(), &rater.to_string(), &label)
                        .unwrap();
                }
            }
        }
        let kappa = fleiss_kappa(&answers).unwrap();
        assert!((kappa - 0.2099).abs() < 1e-3, "kappa {kappa}");
    }

    /// Krippendorff (2011), "Computing Krippendorff's alpha-reliability", nominal example with
    /// missing values: 4 observers, 12 units, α = 0.743.
    #[test]
    fn krippendorff_matches_the_published_example() {
        let observers: [[Option<u8>; 12]; 4] = [
            [1, 2, 3, 3, 2, 1, 4, 1, 2, 0, 0, 0].map(|v| (v > 0).then_some(v)),
            [1, 2, 3, 3, 2, 2, 4, 1, 2, 5, 0, 3].map(|v| (v > 0).then_some(v)),
            [0, 3, 3, 3, 2, 3, 4, 2, 2, 5, 1, 0].map(|v| (v > 0).then_some(v)),
            [1, 2, 3, 3, 2, 4, 4, 1, 2, 5, 1, 0].map(|v| (v > 0).then_some(v)),
        ];
        let mut answers = Answers::new((1..=5).map(|c| c.to_string()).collect()).unwrap();
        for (observer, values) in observers.iter().enumerate() {
            for (unit, value) in values.iter().enumerate() {
                if let Some(v) = value {
                    answers
                        .push(&unit.to_string(), &observer.to_string(), &v.to_string())
                        .unwrap();
                }
            }
        }
        let alpha = krippendorff_alpha(&answers).unwrap();
        assert!((alpha - 0.743).abs() < 1e-3, "alpha {alpha}");
    }

    #[test]
    fn undefined_without_pairs_or_without_variety() {
        let mut lonely = Answers::new(vec!["a".into(), "b".into()]).unwrap();
        lonely.push("x", "w1", "a").unwrap();
        lonely.push("y", "w1", "b").unwrap();
        assert_eq!(fleiss_kappa(&lonely), None);
        assert_eq!(krippendorff_alpha(&lonely), None);

        let mut unanimous = Answers::new(vec!["a".into(), "b".into()]).unwrap();
        unanimous.push("x", "w1", "a").unwrap();
        unanimous.push("x", "w2", "a").unwrap();
        assert_eq!(fleiss_kappa(&unanimous), None);
        assert_eq!(krippendorff_alpha(&unanimous), None);
    }

    #[test]
    fn perfect_agreement_scores_one_and_split_pairs_score_below_zero() {
        let mut perfect = Answers::new(vec!["a".into(), "b".into()]).unwrap();
        let mut split = Answers::new(vec!["a".into(), "b".into()]).unwrap();
        for item in ["x", "y", "z", "v"] {
            let truth = if item < "y" { "a" } else { "b" };
            perfect.push(item, "w1", truth).unwrap();
            perfect.push(item, "w2", truth).unwrap();
            split.push(item, "w1", "a").unwrap();
            split.push(item, "w2", "b").unwrap();
        }
        assert!((fleiss_kappa(&perfect).unwrap() - 1.0).abs() < 1e-12);
        assert!((krippendorff_alpha(&perfect).unwrap() - 1.0).abs() < 1e-12);
        assert!(fleiss_kappa(&split).unwrap() < 0.0);
        assert!(krippendorff_alpha(&split).unwrap() < 0.0);
    }
}
