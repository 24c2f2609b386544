//! Items: the things contributors judge. An item's id is the hash of its data, so the same
//! content imported twice is one item, and a dataset can name its items without holding them.

use caravan_core::{Hash32, hash::keccak256};
use serde::{Deserialize, Serialize};

use crate::schema::{Answer, AnswerError, LabelSchema};

/// The largest item payload accepted, as canonical JSON. Bigger media belongs in a blob store,
/// referenced from the item by URL or hash.
pub const MAX_ITEM_BYTES: usize = 1 << 20;

/// An item's content hash: keccak-256 of its canonical JSON (keys sorted, no whitespace).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct ItemId(pub Hash32);

impl std::fmt::Display for ItemId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

/// A model's suggested answer for an item, shown to contributors as a pre-label.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Prediction {
    pub model: String,
    pub answer: Answer,
    /// The model's confidence in `[0, 1]`, when it gave one; the queue can order by it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub score: Option<f64>,
}

/// An item as imported: its data, and optionally a known answer (a gold item) and pre-labels.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Item {
    pub data: serde_json::Value,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gold: Option<Answer>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub predictions: Vec<Prediction>,
}

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ItemError {
    #[error("item data must be a JSON object of named fields")]
    NotAnObject,
    #[error(
        "item data is {0} bytes, over the limit of {MAX_ITEM_BYTES}; store media elsewhere and put its URL in the item"
    )]
    TooLarge(usize),
    #[error("gold: {0}")]
    Gold(AnswerError),
    #[error("predictions[{index}] ({model}): {error}")]
    Prediction {
        index: usize,
        model: String,
        error: AnswerError,
    },
    #[error("predictions[{index}] ({model}): score {score} must be between 0 and 1")]
    PredictionScore {
        index: usize,
        model: String,
        score: f64,
    },
}

impl Item {
    /// The canonical bytes the id is computed from.
    pub fn canonical_data(&self) -> String {
        // serde_json's map keeps keys sorted, so this is canonical.
        self.data.to_string()
    }

    pub fn id(&self) -> ItemId {
        ItemId(keccak256(self.canonical_data().as_bytes()))
    }

    /// Checks the item against the project's schema: its shape, size, gold answer and every
    /// prediction, so a pre-label that would not show is an error at import, not a silent gap.
    pub fn validate(&self, schema: &LabelSchema) -> Result<(), ItemError> {
        if !self.data.is_object() {
            return Err(ItemError::NotAnObject);
        }
        let size = self.canonical_data().len();
        if size > MAX_ITEM_BYTES {
            return Err(ItemError::TooLarge(size));
        }
        if let Some(gold) = &self.gold {
            schema.validate(gold, &self.data).map_err(ItemError::Gold)?;
        }
        for (index, prediction) in self.predictions.iter().enumerate() {
            schema
                .validate(&prediction.answer, &self.data)
                .map_err(|error| ItemError::Prediction {
                    index,
                    model: prediction.model.clone(),
                    error,
                })?;
            if let Some(score) = prediction.score
                && !(0.0..=1.0).contains(&score)
            {
                return Err(ItemError::PredictionScore {
                    index,
                    model: prediction.model.clone(),
                    score,
                });
            }
        }
        Ok(())
    }

    /// How unsure the models are about this item, in `[0, 1]`: one minus the best prediction's
    /// score, or `None` without scored predictions.
    pub fn model_uncertainty(&self) -> Option<f64> {
        self.predictions
            .iter()
            .filter_map(|p| p.score)
            .reduce(f64::max)
            .map(|best| 1.0 - best)
    }
}
