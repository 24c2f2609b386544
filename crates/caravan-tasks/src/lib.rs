//! Data tasks: where value enters caravan.
//!
//! Requesters post projects (a label schema, overlap, gold, budget); contributors judge items;
//! quality control (truth inference, gold accuracy, review, agreement) decides what is accepted;
//! accepted work becomes a dataset whose every item records who made it and how much their
//! judgments weigh.
//!
//! Like `caravan-core`, this crate does no I/O: the same judgments give the same labels, skills
//! and payouts on every machine. Storage and HTTP are shells around it.

pub mod agreement;
pub mod answers;
pub mod board;
pub mod dataset;
pub mod export;
pub mod import;
pub mod inference;
pub mod item;
pub mod label_studio;
pub mod project;
pub mod schema;

pub use answers::{Answers, AnswersError, Judgment};
pub use inference::{Inference, Method, infer};
