//! Chance-corrected agreement between workers over a project's judgments.
//!
//! Both metrics use every judgment of every item that has at least two (a single judgment cannot
//! agree or disagree with anything) and treat labels as nominal. Both are `None` when undefined:
//! no item has two judgments, or only one label was ever used (no disagreement is possible, so
//! there is nothing for chance to explain).

use crate::answers::Answers;

/// Fleiss' kappa, generalised to a varying number of judgments per item: mean observed pairwise
/// agreement per item against the agreement expected from the overall label proportions.
pub fn fleiss_kappa(answers: &Answers) -> Option<f64> {
    let counts = label_counts(answers);
    let k = answers.label_count();
    let mut observed = 0.0;
    let mut items = 0usize;
    let mut label_totals = vec![0.0; k];
    for row in counts.chunks_exact(k) {
        let n: f64 = row.iter().sum();
        if n < 2.0 {
            continue;
        }
        let agreeing_pairs: f64 = row.iter().map(|c| c * (c - 1.0)).sum();
        observed += agreeing_pairs / (n * (n - 1.0));
        items += 1;
        label_totals.iter_mut().zip(row).for_each(|(t, c)| *t += c);
    }
    if items == 0 {
        return None;
    }
    let total: f64 = label_totals.iter().sum();
    let expected: f64 = label_totals.iter().map(|t| (t / total).powi(2)).sum();
    if expected >= 1.0 {
        return None;
    }
    Some((observed / items as f64 - expected) / (1.0 - expected))
}

/// Krippendorff's alpha for nominal data, from the coincidence matrix: `1 − D_o / D_e`, where
/// `D_o` is the observed share of disagreeing pairs and `D_e` the share expected by chance.
pub fn krippendorff_alpha(answers: &Answers) -> Option<f64> {
    let counts = label_counts(answers);
    let k = answers.label_count();
    let mut coincident_same = 0.0;
    let mut pairable = vec![0.0; k];
    for row in counts.chunks_exact(k) {
        let m: f64 = row.iter().sum();
        if m < 2.0 {
            continue;
        }
        coincident_same += row.iter().map(|c| c * (c - 1.0)).sum::<f64>() / (m - 1.0);
        pairable.iter_mut().zip(row).for_each(|(p, c)| *p += c);
    }
    let n: f64 = pairable.iter().sum();
    if n < 2.0 {
        return None;
    }
    let observed_disagreement = n - coincident_same;
    let expected_disagreement = (n * n - pairable.iter().map(|c| c * c).sum::<f64>()) / (n - 1.0);
    if expected_disagreement <= 0.0 {
        return None;
    }
    Some(1.0 - observed_disagreement / expected_disagreement)
}

/// Judgments per (item, label), one row of `label_count` per item.
fn label_counts(answers: &Answers) -> Vec<f64> {
    let k = answers.label_count();
    let mut counts = vec![0.0; answers.item_count() * k];
    for j in answers.judgments() {
        counts[j.item as usize * k + j.label as usize] += 1.0;
    }
    counts
}

#[cfg(test)]
mod tests {
    use super::*;

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
