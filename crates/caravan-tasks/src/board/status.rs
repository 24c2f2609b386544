//! What a requester sees of a project: progress, money, agreement.

use caravan_core::Amount;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

use super::{Board, count_one};

impl Board {
    /// A summary a requester reads. Costs the same whatever the project's size.
    pub fn status(&self) -> BoardStatus {
        let (fleiss_kappa, krippendorff_alpha) = self.agreement();
        BoardStatus {
            items: (self.items.len() - self.gold.len()) as u64,
            gold_items: self.gold.len() as u64,
            resolved: self.resolved_items,
            judgments: u64::from(self.judgment_count),
            contributors: self.working,
            paused: self.paused,
            awaiting_review: self.awaiting_review.len() as u64,
            paid: self.paid,
            budget: self.spec.budget,
            model_agreement: self.model_agreement.clone(),
            confidence_at_resolution: self.confidence_at_resolution.to_vec(),
            fleiss_kappa,
            krippendorff_alpha,
        }
    }

    /// Fleiss' kappa and Krippendorff's alpha over every contributor's answers on real items
    /// (see [`super::Judgment::is_agreement_evidence`]), for categorical task types; `None` otherwise
    /// or when undefined.
    pub fn agreement(&self) -> (Option<f64>, Option<f64>) {
        self.agreement.as_ref().map_or((None, None), |tally| {
            (tally.fleiss_kappa(), tally.krippendorff_alpha())
        })
    }

    /// Keeps the agreement tally in step after `judgment` became agreement evidence (`added`)
    /// or stopped being it: its item's row is replaced by the row now.
    pub(super) fn retally(&mut self, judgment: u32, added: bool) {
        if self.agreement.is_none() {
            return;
        }
        let record = &self.judgments[&judgment];
        if record.gold {
            return;
        }
        let Some(category) = record.answer.category() else {
            return;
        };
        let now = self.evidence_row(record.item);
        let mut before = now.clone();
        match before.iter_mut().find(|(label, _)| *label == category) {
            Some((_, count)) if added => *count -= 1,
            Some((_, count)) => *count += 1,
            None => before.push((category, 1)),
        }
        let tally = self.agreement.as_mut().expect("seen kept above");
        tally.remove_item(&before);
        tally.add_item(&now);
    }

    /// An item's agreement evidence: judgments per category, forgotten ones included.
    fn evidence_row(&self, item: u32) -> Vec<(String, u64)> {
        let state = &self.items[item as usize];
        let mut row: Vec<(String, u64)> = state
            .forgotten_evidence
            .iter()
            .map(|&(label, count)| (self.labels[label as usize].clone(), u64::from(count)))
            .collect();
        for &j in &state.judgments {
            let record = &self.judgments[&j];
            if !record.is_agreement_evidence() {
                continue;
            }
            let Some(category) = record.answer.category() else {
                continue;
            };
            count_one(&mut row, category);
        }
        row
    }
}

/// How a project is doing.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct BoardStatus {
    pub items: u64,
    pub gold_items: u64,
    pub resolved: u64,
    pub judgments: u64,
    /// Contributors who submitted at least one judgment.
    pub contributors: u64,
    pub paused: u64,
    pub awaiting_review: u64,
    #[serde(with = "caravan_core::serde_u128")]
    pub paid: Amount,
    #[serde(with = "caravan_core::serde_u128")]
    pub budget: Amount,
    /// Per model: resolved items where its prediction matched the label the item resolved
    /// with, and items compared.
    pub model_agreement: BTreeMap<String, (u64, u64)>,
    /// Resolved categorical items by how certain their label was when they resolved, in
    /// tenths: `[0]` counts 0–10%, …, `[9]` counts 90–100%.
    #[serde(default)]
    pub confidence_at_resolution: Vec<u64>,
    /// Chance-corrected agreement between contributors (categorical projects with overlap).
    pub fleiss_kappa: Option<f64>,
    pub krippendorff_alpha: Option<f64>,
}
