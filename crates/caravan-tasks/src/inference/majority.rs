//! Majority vote and Wawa (majority vote weighted by each worker's agreement with it).

use super::{Inference, argmax, average_per_worker};
use crate::answers::Answers;

/// Most votes wins; a tie goes to the label that comes first in the label set. Confidence is the
/// winner's share of the item's votes.
pub(super) fn majority_vote(answers: &Answers) -> Inference {
    weighted_vote(answers, |_| 1.0)
}

/// Majority vote, then each worker's weight is their agreement with it, then a weighted vote.
/// A worker who never agrees with the majority gets weight 0 and stops counting.
pub(super) fn wawa(answers: &Answers) -> Inference {
    let first = majority_vote(answers);
    weighted_vote(answers, |worker| first.worker_skill[worker as usize])
}

fn weighted_vote(answers: &Answers, weight: impl Fn(u32) -> f64) -> Inference {
    let labels = answers.label_count();
    let mut votes = vec![0.0; answers.item_count() * labels];
    for j in answers.judgments() {
        votes[j.item as usize * labels + j.label as usize] += weight(j.worker);
    }
    let (chosen, confidence): (Vec<u32>, Vec<f64>) = votes
        .chunks_exact(labels)
        .map(|row| {
            let total: f64 = row.iter().sum();
            let (label, best) = argmax(row);
            let share = if total > 0.0 { best / total } else { 0.0 };
            (label, share)
        })
        .unzip();
    let worker_skill = average_per_worker(answers, |j| {
        f64::from(u8::from(chosen[j.item as usize] == j.label))
    });
    Inference {
        labels: chosen,
        confidence,
        worker_skill,
        iterations: 1,
    }
}
