//! Dawid–Skene (1979): each worker has a full confusion matrix `P(says l | truth k)`, the classes
//! have priors, and EM alternates between posteriors over each item's truth and those parameters.

use super::{Inference, MAX_ITERATIONS, Posteriors, TOLERANCE};
use crate::answers::{Answers, Judgment};

/// Pseudo-count added to every confusion cell: a worker seen only on one class still has a
/// small, non-zero chance of every answer, so one odd label cannot veto a class outright.
const CONFUSION_SMOOTHING: f64 = 0.01;
/// Pseudo-count added to every class when estimating priors. It keeps a rare class from being
/// driven to a prior of zero, the collapse that skewed sets (S_Rel) provoke.
const PRIOR_SMOOTHING: f64 = 1.0;

/// Runs EM from majority-vote posteriors (vote shares), so the start is deterministic and the
/// confusion matrices begin on the "workers are mostly right" side of the likelihood.
pub(super) fn dawid_skene(answers: &Answers) -> Inference {
    let k = answers.label_count();
    let mut posteriors = Posteriors {
        labels: k,
        probabilities: vote_shares(answers),
    };
    let mut log_priors = vec![0.0; k];
    let mut log_confusion = vec![0.0; answers.worker_count() * k * k];
    let mut log_scores = vec![0.0; answers.item_count() * k];
    // Visiting judgments item by item keeps the posterior and score rows each step touches
    // adjacent in memory (a third less time on S_Rel than file order).
    let mut by_item = answers.judgments().to_vec();
    by_item.sort_unstable_by_key(|j| j.item);
    let mut iterations = 0;
    while iterations < MAX_ITERATIONS {
        iterations += 1;
        estimate_log_parameters(
            answers,
            &by_item,
            &posteriors,
            &mut log_priors,
            &mut log_confusion,
        );
        for row in log_scores.chunks_exact_mut(k) {
            row.copy_from_slice(&log_priors);
        }
        for j in &by_item {
            let start = (j.worker as usize * k + j.label as usize) * k;
            let given_label = &log_confusion[start..start + k];
            let row = &mut log_scores[j.item as usize * k..(j.item as usize + 1) * k];
            for (score, cell) in row.iter_mut().zip(given_label) {
                *score += cell;
            }
        }
        if posteriors.set_from_log_scores(&log_scores) < TOLERANCE {
            break;
        }
    }
    let skill = (0..answers.worker_count())
        .map(|w| {
            let cells = &log_confusion[w * k * k..(w + 1) * k * k];
            (0..k)
                .map(|truth| (log_priors[truth] + cells[truth * k + truth]).exp())
                .sum()
        })
        .collect();
    posteriors.conclude(skill, iterations)
}

/// Each item's vote shares: the soft majority vote.
pub(super) fn vote_shares(answers: &Answers) -> Vec<f64> {
    let k = answers.label_count();
    let mut shares = vec![0.0; answers.item_count() * k];
    for j in answers.judgments() {
        shares[j.item as usize * k + j.label as usize] += 1.0;
    }
    for row in shares.chunks_exact_mut(k) {
        let total: f64 = row.iter().sum();
        row.iter_mut().for_each(|s| *s /= total);
    }
    shares
}

/// The M step: the logarithms of the class priors and of each worker's confusion matrix
/// `P(says label | truth)`, both smoothed. The confusion buffer is laid out worker, then observed
/// label, then truth, so the E and M steps touch `k` adjacent cells per judgment. The buffers
/// first accumulate pseudo-counts, then hold their logarithms.
fn estimate_log_parameters(
    answers: &Answers,
    judgments: &[Judgment],
    posteriors: &Posteriors,
    log_priors: &mut [f64],
    log_confusion: &mut [f64],
) {
    let k = answers.label_count();
    log_priors.fill(PRIOR_SMOOTHING);
    for item in 0..answers.item_count() {
        for (prior, p) in log_priors.iter_mut().zip(posteriors.row(item)) {
            *prior += p;
        }
    }
    let total: f64 = log_priors.iter().sum();
    log_priors.iter_mut().for_each(|p| *p = (*p / total).ln());

    log_confusion.fill(CONFUSION_SMOOTHING);
    for j in judgments {
        let start = (j.worker as usize * k + j.label as usize) * k;
        let given_label = &mut log_confusion[start..start + k];
        for (cell, p) in given_label.iter_mut().zip(posteriors.row(j.item as usize)) {
            *cell += p;
        }
    }
    // Normalise each (worker, truth) over the observed labels: a stride of `k` in this layout.
    let mut totals = vec![0.0; k];
    for worker in log_confusion.chunks_exact_mut(k * k) {
        totals.fill(0.0);
        for given_label in worker.chunks_exact(k) {
            totals
                .iter_mut()
                .zip(given_label)
                .for_each(|(t, c)| *t += c);
        }
        for given_label in worker.chunks_exact_mut(k) {
            for (cell, total) in given_label.iter_mut().zip(&totals) {
                *cell = (*cell / total).ln();
            }
        }
    }
}
