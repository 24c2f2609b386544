//! A project: what a requester asks for, how much overlap and checking it wants, and what it pays.

use caravan_core::{Address, Amount, Hash32, Ppm, hash::keccak256};
use serde::{Deserialize, Serialize};

use crate::inference::Method;
use crate::schema::{LabelSchema, SchemaError};

/// The most judgments any item may collect.
pub const MAX_OVERLAP: u32 = 100;
pub const MAX_TITLE_LEN: usize = 200;
pub const MAX_INSTRUCTIONS_LEN: usize = 20_000;

/// A project's id: keccak-256 of its canonical JSON spec and requester, so two requesters (or
/// one requester twice) posting the same spec get different ids only if they differ.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct ProjectId(pub Hash32);

impl std::fmt::Display for ProjectId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

/// How many judgments an item gets. Categorical items start at `min` and get one more at a time
/// while their aggregated confidence is below `confidence`, up to `max`; reviewed items (free
/// text, spans) need `min` accepted judgments.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct Overlap {
    pub min: u32,
    pub max: u32,
    /// Probability the aggregated label is right, in `(0, 1]`, at which an item stops.
    pub confidence: f64,
}

/// The qualification exam: the first `questions` items a contributor gets are gold items, and
/// they work on the project only if their share right is at least `pass_mark`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Exam {
    pub questions: u32,
    pub pass_mark: Ppm,
}

/// Which open item a contributor gets next.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum QueueOrder {
    /// In the order items were imported.
    #[default]
    ImportOrder,
    /// Items the models are least sure about first (needs scored predictions; items without
    /// them come after, in import order).
    ModelUncertainty,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ProjectSpec {
    pub title: String,
    pub instructions: String,
    pub schema: LabelSchema,
    pub overlap: Overlap,
    /// The ERC-20 token the bounty and budget are in.
    pub token: Address,
    /// Paid per accepted judgment, in the token's base units.
    #[serde(with = "caravan_core::serde_u128")]
    pub bounty: Amount,
    /// The most the project will ever pay; escrowed up front.
    #[serde(with = "caravan_core::serde_u128")]
    pub budget: Amount,
    /// Share of assignments (after the exam) that are gold items.
    pub gold_rate: Ppm,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exam: Option<Exam>,
    /// Gold accuracy below which a contributor is paused and their judgments stop counting.
    pub skill_bar: Ppm,
    /// Gold answers (after the exam) before the skill bar applies, so one slip is not a verdict.
    pub gold_grace: u32,
    /// Submissions faster than this after the item was handed out are refused.
    pub min_seconds_per_item: u32,
    /// The most judgments one contributor may submit per UTC day on this project.
    pub daily_cap: u32,
    /// Milliseconds since the Unix epoch after which no item is handed out.
    pub deadline_ms: u64,
    /// How long a contributor holds an item before it goes back to the pool.
    pub lease_seconds: u32,
    #[serde(default)]
    pub order: QueueOrder,
    /// The truth-inference method that labels the published dataset.
    #[serde(with = "method_code")]
    pub method: Method,
}

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum SpecError {
    #[error("title must be 1 to {MAX_TITLE_LEN} bytes")]
    Title,
    #[error("instructions must be at most {MAX_INSTRUCTIONS_LEN} bytes")]
    Instructions,
    #[error("schema: {0}")]
    Schema(#[from] SchemaError),
    #[error(
        "overlap must satisfy 1 <= min <= max <= {MAX_OVERLAP} and 0 < confidence <= 1; got min {min}, max {max}, confidence {confidence}"
    )]
    Overlap { min: u32, max: u32, confidence: f64 },
    #[error("bounty must be more than 0 and at most the budget")]
    Bounty,
    #[error("an exam needs at least 1 question")]
    Exam,
    #[error("daily_cap and lease_seconds must be at least 1")]
    Limits,
}

impl ProjectSpec {
    pub fn validate(&self) -> Result<(), SpecError> {
        if self.title.trim().is_empty() || self.title.len() > MAX_TITLE_LEN {
            return Err(SpecError::Title);
        }
        if self.instructions.len() > MAX_INSTRUCTIONS_LEN {
            return Err(SpecError::Instructions);
        }
        self.schema.validate_schema()?;
        let o = self.overlap;
        if o.min == 0
            || o.min > o.max
            || o.max > MAX_OVERLAP
            || !(o.confidence > 0.0 && o.confidence <= 1.0)
        {
            return Err(SpecError::Overlap {
                min: o.min,
                max: o.max,
                confidence: o.confidence,
            });
        }
        if self.bounty == 0 || self.bounty > self.budget {
            return Err(SpecError::Bounty);
        }
        if self.exam.is_some_and(|e| e.questions == 0) {
            return Err(SpecError::Exam);
        }
        if self.daily_cap == 0 || self.lease_seconds == 0 {
            return Err(SpecError::Limits);
        }
        Ok(())
    }

    /// The id of this spec posted by `requester` with `nonce` (so a requester can post the same
    /// spec twice on purpose).
    pub fn id(&self, requester: &Address, nonce: u64) -> ProjectId {
        let spec = serde_json::to_string(self).expect("a spec always serialises");
        let mut bytes = spec.into_bytes();
        bytes.extend_from_slice(&requester.0);
        bytes.extend_from_slice(&nonce.to_be_bytes());
        ProjectId(keccak256(&bytes))
    }

    /// The most judgments the budget can pay for.
    pub fn paid_judgments(&self) -> u128 {
        self.budget / self.bounty
    }
}

/// Methods travel as their short codes (`mv`, `wawa`, `ds`, `glad`).
mod method_code {
    use serde::{Deserialize, Deserializer, Serializer, de::Error};

    use crate::inference::Method;

    pub fn serialize<S: Serializer>(method: &Method, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(method.code())
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Method, D::Error> {
        let code = String::deserialize(d)?;
        Method::from_code(&code).ok_or_else(|| {
            D::Error::custom(format!("unknown method {code:?}; use mv, wawa, ds or glad"))
        })
    }
}
