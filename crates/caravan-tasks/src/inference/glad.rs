//! GLAD (Whitehill et al. 2009): worker `w` has ability `α_w` (negative for adversaries), item `i`
//! has inverse difficulty `β_i = e^{b_i} > 0`, and a worker is right with probability
//! `σ(α_w β_i)`; a wrong answer is spread evenly over the other labels. EM alternates posteriors
//! over each item's truth with a few damped Newton steps on `α` and `b` under Gaussian priors.
//! Class priors stay uniform, as in the original: re-estimating them lets one class absorb the
//! others on skewed sets (S_Rel fell from 0.50 to 0.27 accuracy when we tried).

use super::{
    Inference, MAX_ITERATIONS, Posteriors, TOLERANCE, average_per_worker, dawid_skene::vote_shares,
};
use crate::answers::Answers;

/// Prior mean of every worker's ability: workers start out as better than chance.
const ABILITY_PRIOR_MEAN: f64 = 1.0;
/// Prior mean of every item's log inverse difficulty.
const LOG_EASINESS_PRIOR_MEAN: f64 = 1.0;
/// Newton sweeps over abilities and difficulties in each M step.
const NEWTON_SWEEPS: usize = 4;
/// The largest change one Newton step may make to a parameter, which keeps early steps stable.
const MAX_STEP: f64 = 1.0;

pub(super) fn glad(answers: &Answers) -> Inference {
    let k = answers.label_count();
    let mut posteriors = Posteriors {
        labels: k,
        probabilities: vote_shares(answers),
    };
    let mut model = Model {
        ability: vec![ABILITY_PRIOR_MEAN; answers.worker_count()],
        log_easiness: vec![LOG_EASINESS_PRIOR_MEAN; answers.item_count()],
    };
    let log_wrong_share = ((k - 1) as f64).ln();
    let mut log_scores = vec![0.0; answers.item_count() * k];
    let mut iterations = 0;
    while iterations < MAX_ITERATIONS {
        iterations += 1;
        for _ in 0..NEWTON_SWEEPS {
            model.step(answers, &posteriors, Parameters::Ability);
            model.step(answers, &posteriors, Parameters::LogEasiness);
        }
        log_scores.fill(0.0);
        for j in answers.judgments() {
            let x = model.ability[j.worker as usize] * model.log_easiness[j.item as usize].exp();
            let log_right = log_sigmoid(x);
            let log_wrong = log_sigmoid(-x) - log_wrong_share;
            let row = &mut log_scores[j.item as usize * k..(j.item as usize + 1) * k];
            row.iter_mut().for_each(|s| *s += log_wrong);
            row[j.label as usize] += log_right - log_wrong;
        }
        if posteriors.set_from_log_scores(&log_scores) < TOLERANCE {
            break;
        }
    }
    let skill = average_per_worker(answers, |j| {
        sigmoid(model.ability[j.worker as usize] * model.log_easiness[j.item as usize].exp())
    });
    posteriors.conclude(skill, iterations)
}

struct Model {
    ability: Vec<f64>,
    log_easiness: Vec<f64>,
}

/// Which parameters a Newton step moves.
#[derive(Clone, Copy)]
enum Parameters {
    Ability,
    LogEasiness,
}

impl Model {
    /// One damped Newton step on every parameter of one kind at once (given the other kind they
    /// are independent), using the diagonal curvature of the expected log-likelihood plus the
    /// unit-variance Gaussian prior.
    fn step(&mut self, answers: &Answers, posteriors: &Posteriors, which: Parameters) {
        let (params, prior_mean) = match which {
            Parameters::Ability => (&self.ability, ABILITY_PRIOR_MEAN),
            Parameters::LogEasiness => (&self.log_easiness, LOG_EASINESS_PRIOR_MEAN),
        };
        let mut gradient: Vec<f64> = params.iter().map(|v| prior_mean - v).collect();
        let mut curvature = vec![1.0; params.len()];
        for j in answers.judgments() {
            let beta = self.log_easiness[j.item as usize].exp();
            let x = self.ability[j.worker as usize] * beta;
            let p = sigmoid(x);
            let right = posteriors.row(j.item as usize)[j.label as usize];
            // dx/dα = β and dx/db = αβ = x.
            let (index, dx) = match which {
                Parameters::Ability => (j.worker as usize, beta),
                Parameters::LogEasiness => (j.item as usize, x),
            };
            gradient[index] += (right - p) * dx;
            curvature[index] += p * (1.0 - p) * dx * dx;
        }
        let params = match which {
            Parameters::Ability => &mut self.ability,
            Parameters::LogEasiness => &mut self.log_easiness,
        };
        for ((v, g), h) in params.iter_mut().zip(&gradient).zip(&curvature) {
            *v += (g / h).clamp(-MAX_STEP, MAX_STEP);
        }
    }
}

fn sigmoid(x: f64) -> f64 {
    1.0 / (1.0 + (-x).exp())
}

/// `ln σ(x)` without overflow for large `|x|`.
fn log_sigmoid(x: f64) -> f64 {
    if x >= 0.0 {
        -(-x).exp().ln_1p()
    } else {
        x - x.exp().ln_1p()
    }
}
