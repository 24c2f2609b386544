//! Truth inference: from many noisy judgments per item to one label per item with a confidence,
//! and a skill per worker.
//!
//! Four standard methods, all deterministic (no random initialisation; ties go to the label that
//! comes first in the label set):
//! - [`Method::MajorityVote`]: most votes wins; confidence is the winner's vote share.
//! - [`Method::Wawa`]: "worker agreement with aggregate": majority vote, then a vote weighted by
//!   each worker's agreement with it.
//! - [`Method::DawidSkene`]: EM over a full confusion matrix per worker and class priors, with
//!   additive smoothing that keeps priors and confusion cells away from zero (a run-away prior is
//!   the known failure on skewed sets).
//! - [`Method::Glad`]: EM over worker ability and item difficulty (Whitehill et al. 2009), errors
//!   spread evenly over the wrong labels.
//!
//! Cost: every method is linear in the number of judgments per iteration; EM methods stop when
//! no item's posterior moves more than [`TOLERANCE`] or after [`MAX_ITERATIONS`].

mod dawid_skene;
mod glad;
mod majority;

use crate::answers::{Answers, Judgment};

/// EM stops when the largest change of any posterior probability falls below this.
pub const TOLERANCE: f64 = 1e-6;
/// EM stops after this many iterations even if not converged.
pub const MAX_ITERATIONS: usize = 100;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Method {
    MajorityVote,
    Wawa,
    DawidSkene,
    Glad,
}

impl Method {
    pub const ALL: [Method; 4] = [
        Method::MajorityVote,
        Method::Wawa,
        Method::DawidSkene,
        Method::Glad,
    ];

    /// The short name used on the command line and in APIs.
    pub fn code(self) -> &'static str {
        match self {
            Method::MajorityVote => "mv",
            Method::Wawa => "wawa",
            Method::DawidSkene => "ds",
            Method::Glad => "glad",
        }
    }

    pub fn from_code(code: &str) -> Option<Method> {
        Method::ALL.into_iter().find(|m| m.code() == code)
    }
}

/// What a method concluded. Vectors are indexed by the item and worker indices of [`Answers`].
#[derive(Clone, Debug, PartialEq)]
pub struct Inference {
    /// The label index chosen for each item.
    pub labels: Vec<u32>,
    /// The method's probability that the chosen label is right, in `[0, 1]`.
    pub confidence: Vec<f64>,
    /// For each worker, the method's estimate of the share of their labels that are right:
    /// agreement with the result for the voting methods, the prior-weighted diagonal of the
    /// confusion matrix for Dawid–Skene, the mean of `σ(α β)` over their items for GLAD.
    pub worker_skill: Vec<f64>,
    /// EM iterations run (1 for the voting methods).
    pub iterations: usize,
}

/// Runs `method` over `answers`.
pub fn infer(answers: &Answers, method: Method) -> Inference {
    match method {
        Method::MajorityVote => majority::majority_vote(answers),
        Method::Wawa => majority::wawa(answers),
        Method::DawidSkene => dawid_skene::dawid_skene(answers),
        Method::Glad => glad::glad(answers),
    }
}

/// Posterior probabilities, one row of `labels` per item.
pub(crate) struct Posteriors {
    pub(crate) labels: usize,
    pub(crate) probabilities: Vec<f64>,
}

impl Posteriors {
    pub(crate) fn row(&self, item: usize) -> &[f64] {
        &self.probabilities[item * self.labels..(item + 1) * self.labels]
    }

    /// Turns log-scores into probabilities row by row (log-sum-exp), returning the largest change
    /// against the previous probabilities.
    pub(crate) fn set_from_log_scores(&mut self, log_scores: &[f64]) -> f64 {
        let mut change: f64 = 0.0;
        let mut exps = vec![0.0; self.labels];
        for (row, scores) in self
            .probabilities
            .chunks_exact_mut(self.labels)
            .zip(log_scores.chunks_exact(self.labels))
        {
            let max = scores.iter().copied().fold(f64::NEG_INFINITY, f64::max);
            let mut total = 0.0;
            for (e, s) in exps.iter_mut().zip(scores) {
                *e = (s - max).exp();
                total += *e;
            }
            for (p, e) in row.iter_mut().zip(&exps) {
                let next = e / total;
                change = change.max((next - *p).abs());
                *p = next;
            }
        }
        change
    }

    /// The most probable label of each item (ties to the first) and its probability.
    pub(crate) fn conclude(&self, worker_skill: Vec<f64>, iterations: usize) -> Inference {
        let (labels, confidence) = (0..self.probabilities.len() / self.labels)
            .map(|item| argmax(self.row(item)))
            .unzip();
        Inference {
            labels,
            confidence,
            worker_skill,
            iterations,
        }
    }
}

/// The index and value of the largest entry; the first one wins a tie.
pub(crate) fn argmax(values: &[f64]) -> (u32, f64) {
    let mut best = 0;
    for (i, v) in values.iter().enumerate() {
        if *v > values[best] {
            best = i;
        }
    }
    (best as u32, values[best])
}

/// For each worker, the mean of `score(judgment)` over their judgments.
pub(crate) fn average_per_worker(answers: &Answers, score: impl Fn(&Judgment) -> f64) -> Vec<f64> {
    let mut sums = vec![0.0; answers.worker_count()];
    let mut counts = vec![0u32; answers.worker_count()];
    for j in answers.judgments() {
        sums[j.worker as usize] += score(j);
        counts[j.worker as usize] += 1;
    }
    sums.iter()
        .zip(&counts)
        .map(|(s, &c)| s / f64::from(c.max(1)))
        .collect()
}

/// How an inference scores against known truth, counted the way published evaluations of
/// truth inference count it: over the items that have both a truth row and judgments.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Accuracy {
    /// Compared items whose inferred label is the true one.
    pub correct: usize,
    /// Truth rows whose item has judgments. A true label no contributor gave still counts
    /// (and is wrong): the item was judged, the crowd missed it.
    pub compared: usize,
    /// Truth rows whose item nobody judged: no inference was made, so they are left out of
    /// the share and reported, never counted as wrong.
    pub unjudged: usize,
}

impl Accuracy {
    /// `correct / compared`; `None` when no truth item was judged.
    pub fn share(&self) -> Option<f64> {
        (self.compared > 0).then(|| self.correct as f64 / self.compared as f64)
    }
}

/// Scores `inference` against `truth` (`item, label` rows); see [`Accuracy`].
pub fn accuracy(answers: &Answers, inference: &Inference, truth: &[(String, String)]) -> Accuracy {
    let mut scored = Accuracy {
        correct: 0,
        compared: 0,
        unjudged: 0,
    };
    for (item, label) in truth {
        let Some(index) = answers.item_index(item) else {
            scored.unjudged += 1;
            continue;
        };
        scored.compared += 1;
        if answers.label_index(label) == Some(inference.labels[index as usize]) {
            scored.correct += 1;
        }
    }
    scored
}

#[cfg(test)]
mod tests;
