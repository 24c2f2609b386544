//! What happens after a judgment: gold grading and pauses, dynamic overlap and resolution for
//! categorical items, review for free text and spans, and the payments that follow.

use caravan_core::{Address, Ppm};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

use super::{Board, CONFIDENCE_BINS, Effect, ExamState, JudgmentStatus, PauseReason, TaskEvent};
use crate::schema::{Answer, AnswerError};

/// A reviewer's decision on a free-text or span judgment.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "decision", rename_all = "snake_case")]
pub enum Verdict {
    Accept,
    /// Accept with a corrected answer, which the dataset uses instead.
    Fix {
        answer: Answer,
    },
    /// Not acceptable: unpaid, and the item goes back to the pool.
    Reject,
}

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ReviewError {
    #[error("{0} is not a reviewer on this project; the requester adds reviewers")]
    NotReviewer(Address),
    #[error("judgment {0} does not exist or is not waiting for review")]
    NotAwaiting(u32),
    #[error("reviewers cannot review their own work")]
    OwnWork,
    #[error("the corrected answer is invalid: {0}")]
    InvalidFix(AnswerError),
}

/// A judgment waiting for review, as a reviewer sees it.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ReviewTask {
    pub judgment: u32,
    pub item: crate::item::ItemId,
    pub data: serde_json::Value,
    pub answer: Answer,
}

impl Board {
    /// The oldest judgment waiting for review that `reviewer` did not write.
    pub fn next_review(&self, reviewer: &Address) -> Result<Option<ReviewTask>, ReviewError> {
        if !self.reviewers.contains(reviewer) {
            return Err(ReviewError::NotReviewer(*reviewer));
        }
        Ok(self
            .awaiting_review
            .iter()
            .map(|&j| (j, &self.judgments[&j]))
            .find(|(_, j)| j.contributor != *reviewer)
            .map(|(judgment, j)| {
                let item = &self.items[j.item as usize];
                ReviewTask {
                    judgment,
                    item: item.id,
                    data: item.item.data.clone(),
                    answer: j.answer.clone(),
                }
            }))
    }

    /// Checks and records a review.
    pub fn review(
        &mut self,
        reviewer: Address,
        judgment: u32,
        verdict: Verdict,
        now_ms: u64,
    ) -> Result<(TaskEvent, Vec<Effect>), ReviewError> {
        if !self.reviewers.contains(&reviewer) {
            return Err(ReviewError::NotReviewer(reviewer));
        }
        if !self.awaiting_review.contains(&judgment) {
            return Err(ReviewError::NotAwaiting(judgment));
        }
        let record = &self.judgments[&judgment];
        if record.contributor == reviewer {
            return Err(ReviewError::OwnWork);
        }
        if let Verdict::Fix { answer } = &verdict {
            let data = &self.items[record.item as usize].item.data;
            self.spec
                .schema
                .validate(answer, data)
                .map_err(ReviewError::InvalidFix)?;
        }
        let event = TaskEvent::Reviewed {
            reviewer,
            judgment,
            verdict,
            at_ms: now_ms,
        };
        let effects = self.apply(&event);
        Ok((event, effects))
    }

    pub(super) fn record_review(
        &mut self,
        judgment: u32,
        verdict: &Verdict,
        effects: &mut Vec<Effect>,
    ) {
        if !self.awaiting_review.remove(&judgment) {
            return;
        }
        let item = self.judgments[&judgment].item;
        match verdict {
            Verdict::Accept => self.pay(judgment, None, effects),
            Verdict::Fix { answer } => self.pay(judgment, Some(answer.clone()), effects),
            Verdict::Reject => self.reject(judgment),
        }
        let accepted = self.items[item as usize]
            .judgments
            .iter()
            .filter(|&&j| {
                matches!(
                    self.judgments[&j].status,
                    JudgmentStatus::Accepted | JudgmentStatus::Fixed(_)
                )
            })
            .count() as u32;
        let exhausted = self.items[item as usize].judgments.len() as u32 >= self.spec.overlap.max;
        let done = accepted >= self.spec.overlap.min || (exhausted && !self.has_pending(item));
        if done {
            self.mark_resolved(item, effects);
        }
        self.refresh_open(item);
        self.forget_settled(item);
    }

    fn has_pending(&self, item: u32) -> bool {
        self.items[item as usize]
            .judgments
            .iter()
            .any(|&j| self.judgments[&j].status == JudgmentStatus::Pending)
    }

    /// Grades a gold answer: the exam while it lasts, then the running gold accuracy that can
    /// pause a contributor. A right gold answer after the exam is paid; exam answers are not.
    pub(super) fn grade_gold(&mut self, judgment: u32, effects: &mut Vec<Effect>) {
        let record = &self.judgments[&judgment];
        let contributor = record.contributor;
        let gold = self.items[record.item as usize]
            .item
            .gold
            .as_ref()
            .expect("graded items are gold");
        let right = same_answer(gold, &record.answer);
        let exam = self.spec.exam;
        let state = self
            .contributors
            .get_mut(&contributor)
            .expect("the contributor was recorded");
        if let Some(exam) = exam
            && state.exam == ExamState::Pending
        {
            state.exam_answered += 1;
            state.exam_correct += u32::from(right);
            self.judgments
                .get_mut(&judgment)
                .expect("the judgment being graded")
                .status = JudgmentStatus::Exam { right };
            effects.push(Effect::ExamAnswered {
                contributor,
                right,
                number: state.exam_answered,
                of: exam.questions,
            });
            if state.exam_answered >= exam.questions {
                let passed = u64::from(state.exam_correct) * u64::from(Ppm::ONE.parts())
                    >= u64::from(exam.pass_mark.parts()) * u64::from(exam.questions);
                if passed {
                    state.exam = ExamState::Passed;
                    effects.push(Effect::ExamPassed { contributor });
                } else {
                    state.exam = ExamState::Failed;
                    let reason = PauseReason::ExamFailed {
                        correct: state.exam_correct,
                        questions: exam.questions,
                        pass_mark_percent: percent(exam.pass_mark),
                    };
                    self.pause(contributor, reason, effects);
                }
            }
            return;
        }
        state.gold_seen += 1;
        state.gold_correct += u32::from(right);
        let (seen, correct) = (state.gold_seen, state.gold_correct);
        if right {
            self.pay(judgment, None, effects);
        } else {
            self.reject(judgment);
        }
        let bar = self.spec.skill_bar;
        let below = u64::from(correct) * u64::from(Ppm::ONE.parts())
            < u64::from(bar.parts()) * u64::from(seen);
        if seen >= self.spec.gold_grace.max(1) && below {
            let reason = PauseReason::GoldAccuracy {
                correct,
                seen,
                bar_percent: percent(bar),
            };
            self.pause(contributor, reason, effects);
        }
    }

    /// Pauses a contributor: their unsettled judgments stop counting and their items reopen.
    fn pause(&mut self, contributor: Address, reason: PauseReason, effects: &mut Vec<Effect>) {
        let state = self.contributors.entry(contributor).or_default();
        let listed = state.rank(contributor);
        self.paused += u64::from(state.paused.is_none());
        state.paused = Some(reason.clone());
        let ranked = state.rank(contributor);
        self.rerank(listed, ranked);
        self.release_lease(&contributor);
        let pending: Vec<u32> = self
            .judgments
            .iter()
            .filter(|(_, record)| {
                record.contributor == contributor && record.status == JudgmentStatus::Pending
            })
            .map(|(&j, _)| j)
            .collect();
        for j in pending {
            let record = self.judgments.get_mut(&j).expect("listed above");
            record.status = JudgmentStatus::Discarded;
            let item = record.item;
            self.retally(j, false);
            self.liable -= 1;
            self.awaiting_review.remove(&j);
            self.refresh_open(item);
            self.forget_settled(item);
        }
        effects.push(Effect::Paused {
            contributor,
            reason,
        });
    }

    /// After a real judgment: queue it for review (free text, spans) or update the item's
    /// confidence and decide whether it needs another judgment (categorical).
    pub(super) fn after_judgment(&mut self, item: u32, judgment: u32, effects: &mut Vec<Effect>) {
        if !self.spec.schema.is_categorical() {
            self.awaiting_review.insert(judgment);
            self.refresh_open(item);
            return;
        }
        let state = &self.items[item as usize];
        if state.resolved {
            // Submitted under a lease taken before the item resolved: settled at once against
            // the label it resolved with, so work done in good faith is still paid when it
            // agrees.
            if let Some(label) = state.resolved_label {
                let label = self.labels[label as usize].clone();
                self.settle_against(item, &label, effects);
            }
            return;
        }
        let leading = self.item_confidence(item);
        let counting = self.counting(item);
        let overlap = self.spec.overlap;
        let confidence = leading.as_ref().map_or(0.0, |(_, c)| *c);
        if let Some(leading) = leading.filter(|_| {
            counting >= overlap.min && (confidence >= overlap.confidence || counting >= overlap.max)
        }) {
            self.resolve_categorical(item, leading, effects);
        } else {
            let state = &mut self.items[item as usize];
            state.needed = (counting + 1).clamp(overlap.min, overlap.max);
        }
        self.refresh_open(item);
    }

    /// The leading category among the item's counting judgments and its posterior probability,
    /// each judgment weighted by its contributor's skill (a one-coin model: right with
    /// probability `skill`, otherwise any other category alike).
    pub fn item_confidence(&self, item: u32) -> Option<(String, f64)> {
        let mut log_scores: BTreeMap<String, f64> = BTreeMap::new();
        let mut votes = Vec::new();
        for &j in &self.items[item as usize].judgments {
            let record = &self.judgments[&j];
            if !record.counts() {
                continue;
            }
            let category = record.answer.category()?;
            log_scores.entry(category.clone()).or_insert(0.0);
            let skill = self.contributors[&record.contributor].skill();
            votes.push((category, skill));
        }
        let k = self
            .spec
            .schema
            .categories()
            .map_or(log_scores.len(), |c| c.len())
            .max(2) as f64;
        for (category, score) in log_scores.iter_mut() {
            for (vote, skill) in &votes {
                *score += if vote == category {
                    skill.ln()
                } else {
                    ((1.0 - skill) / (k - 1.0)).ln()
                };
            }
        }
        // Categories nobody chose share the rest of the probability mass.
        let unseen = k - log_scores.len() as f64;
        let unseen_score: f64 = votes
            .iter()
            .map(|(_, skill)| ((1.0 - skill) / (k - 1.0)).ln())
            .sum();
        let max = log_scores
            .values()
            .copied()
            .fold(f64::NEG_INFINITY, f64::max);
        let total: f64 = log_scores.values().map(|s| (s - max).exp()).sum::<f64>()
            + unseen.max(0.0) * (unseen_score - max).exp();
        let (best, score) = log_scores
            .iter()
            .max_by(|a, b| a.1.total_cmp(b.1).then_with(|| b.0.cmp(a.0)))?;
        Some((best.clone(), (score - max).exp() / total))
    }

    /// Resolves a real item with its leading label and that label's confidence: settles its
    /// judgments, and counts the confidence and the models' pre-labels against the label.
    fn resolve_categorical(
        &mut self,
        item: u32,
        (label, confidence): (String, f64),
        effects: &mut Vec<Effect>,
    ) {
        self.settle_against(item, &label, effects);
        let bin = ((confidence * CONFIDENCE_BINS as f64) as usize).min(CONFIDENCE_BINS - 1);
        self.confidence_at_resolution[bin] += 1;
        for prediction in &self.items[item as usize].item.predictions {
            let entry = self
                .model_agreement
                .entry(prediction.model.clone())
                .or_default();
            entry.0 += u64::from(prediction.answer.category().as_deref() == Some(&label));
            entry.1 += 1;
        }
        self.items[item as usize].resolved_label = Some(self.label_number(label));
        self.mark_resolved(item, effects);
    }

    /// Marks a real item as having its final judgments, once: the count
    /// [`Board::items_left`] reads, and the `Resolved` effect.
    fn mark_resolved(&mut self, item: u32, effects: &mut Vec<Effect>) {
        let state = &mut self.items[item as usize];
        if state.resolved {
            return;
        }
        state.resolved = true;
        effects.push(Effect::Resolved { item: state.id });
        self.resolved_items += 1;
    }

    /// Pays the item's pending judgments that agree with `label`; rejects the rest.
    fn settle_against(&mut self, item: u32, label: &str, effects: &mut Vec<Effect>) {
        let judgments = self.items[item as usize].judgments.clone();
        for j in judgments {
            let record = &self.judgments[&j];
            if record.status != JudgmentStatus::Pending {
                continue;
            }
            if record.answer.category().as_deref() == Some(label) {
                self.pay(j, None, effects);
            } else {
                self.reject(j);
            }
        }
    }
}

/// Whether a contributor's answer matches a gold answer: the same category for categorical
/// answers, the same text ignoring case and surrounding space, the same spans.
fn same_answer(gold: &Answer, answer: &Answer) -> bool {
    match (gold, answer) {
        (Answer::Text(a), Answer::Text(b)) => a.trim().to_lowercase() == b.trim().to_lowercase(),
        (Answer::Spans(a), Answer::Spans(b)) => a == b,
        _ => gold.category().is_some() && gold.category() == answer.category(),
    }
}

fn percent(share: Ppm) -> f64 {
    f64::from(share.parts()) / 10_000.0
}
