//! What a requester sees of a project: progress, money, agreement.

use caravan_core::Amount;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

use super::Board;

impl Board {
    /// A summary a requester reads.
    pub fn status(&self) -> BoardStatus {
        let mut status = self.counts();
        (status.fleiss_kappa, status.krippendorff_alpha) = self.agreement();
        status.model_agreement = self.model_agreements();
        status
    }

    /// [`Board::status`] without the agreement measures, which walk every item: the counters
    /// alone, for a page that measures agreement less often than it is drawn.
    pub fn counts(&self) -> BoardStatus {
        let paused = self
            .contributors
            .values()
            .filter(|c| c.paused.is_some())
            .count() as u64;
        // Only contributors with a stored judgment: asking for work leaves no durable trace.
        let contributors = self
            .contributors
            .values()
            .filter(|c| c.submitted > 0)
            .count() as u64;
        BoardStatus {
            items: (self.items.len() - self.gold.len()) as u64,
            gold_items: self.gold.len() as u64,
            resolved: self.resolved_items,
            judgments: self.judgments.len() as u64,
            contributors,
            paused,
            awaiting_review: self.awaiting_review.len() as u64,
            paid: self.paid,
            budget: self.spec.budget,
            model_agreement: BTreeMap::new(),
            fleiss_kappa: None,
            krippendorff_alpha: None,
        }
    }

    /// How often each model's suggestions agree with the resolved labels: (agreed, compared).
    pub fn model_agreements(&self) -> BTreeMap<String, (u64, u64)> {
        self.model_agreement()
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
    /// Per model: resolved items where its prediction matched the people's label, and items compared.
    pub model_agreement: BTreeMap<String, (u64, u64)>,
    /// Chance-corrected agreement between contributors (categorical projects with overlap).
    pub fleiss_kappa: Option<f64>,
    pub krippendorff_alpha: Option<f64>,
}

impl Board {
    /// Fleiss' kappa and Krippendorff's alpha over the judgments that count on real items (for
    /// categorical task types; `None` otherwise or when undefined).
    pub fn agreement(&self) -> (Option<f64>, Option<f64>) {
        let Some(mut categories) = self
            .spec
            .schema
            .categories()
            .or_else(|| self.spec.schema.is_categorical().then(Vec::new))
        else {
            return (None, None);
        };
        let counted = || {
            self.judgments
                .iter()
                .filter(|j| !j.gold && j.counts())
                .filter_map(|j| Some((j, j.answer.category()?)))
        };
        for (_, category) in counted() {
            if !categories.contains(&category) {
                categories.push(category);
            }
        }
        let Ok(mut answers) = crate::answers::Answers::new(categories) else {
            return (None, None);
        };
        for (j, category) in counted() {
            let item = j.item.to_string();
            let worker = j.contributor.to_string();
            answers
                .push(&item, &worker, &category)
                .expect("every category was listed");
        }
        (
            crate::agreement::fleiss_kappa(&answers),
            crate::agreement::krippendorff_alpha(&answers),
        )
    }
}
