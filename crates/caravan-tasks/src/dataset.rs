//! Publishing: a project's resolved work becomes a dataset whose every row records who made it,
//! with a Merkle root over its rows and per-contributor weights the royalty engine pays by.
//!
//! Categorical items are labelled by the project's truth-inference method over the judgments
//! that count (contributors paused for poor gold accuracy are left out entirely); free-text and
//! span items contribute one row per accepted answer, with a reviewer's fix in place of the
//! original. A contributor's weight is the sum, over their accepted judgments in the dataset,
//! of their measured skill in thousandths (at least 1 per judgment), so careful work earns more
//! of every future royalty than the same amount of careless work.

use caravan_core::hash::keccak256_parts;
use caravan_core::{
    Address, AssetKind, Hash32, Licence, Manifest, Member, MerkleTree, Ppm, Role, RoleShare,
};
use rustc_hash::FxHashMap;
use serde::Serialize;
use std::collections::BTreeMap;

use crate::answers::Answers;
use crate::board::{Board, Judgment, JudgmentStatus, Memory};
use crate::inference::infer;
use crate::item::ItemId;
use crate::schema::{Answer, LabelSchema};

/// One row of a dataset.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct DatasetRow {
    pub item: ItemId,
    pub answer: Answer,
    /// The method's probability that the answer is right (1 for reviewed answers).
    pub confidence: f64,
    /// Whose accepted judgments back this row.
    pub contributors: Vec<Address>,
}

impl DatasetRow {
    /// The row's Merkle leaf: `keccak(item id ‖ keccak(answer JSON) ‖ confidence in ppm)`.
    pub fn leaf_hash(&self) -> Hash32 {
        let answer = serde_json::to_vec(&self.answer).expect("answers serialise");
        let answer_hash = caravan_core::keccak256(&answer);
        let confidence = confidence_ppm(self.confidence);
        keccak256_parts(&[&self.item.0.0, &answer_hash.0, &confidence.to_be_bytes()])
    }
}

fn confidence_ppm(confidence: f64) -> u32 {
    (confidence.clamp(0.0, 1.0) * 1e6).round() as u32
}

/// A published snapshot of a project.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Dataset {
    pub schema: LabelSchema,
    pub method: &'static str,
    /// Rows sorted by item id (and answer, for several rows of one item).
    pub rows: Vec<DatasetRow>,
    pub item_root: Hash32,
    /// Contributors with weight, sorted by account: the data-contributor role's members.
    pub contributors: Vec<Member>,
}

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum DatasetError {
    #[error("nothing to publish yet: no item is resolved")]
    Empty,
    #[error("curator share {0} ppm leaves nothing for contributors; keep it below 100%")]
    CuratorShare(u32),
}

impl Dataset {
    /// Builds the dataset from everything resolved on `board` so far.
    ///
    /// # Panics
    /// On a board that forgets settled judgments ([`Memory::OpenWork`]): its rows would be
    /// missing. A serving node replays the project into a board that keeps every judgment.
    pub fn build(board: &Board) -> Result<Dataset, DatasetError> {
        assert_eq!(
            board.memory(),
            Memory::Everything,
            "a dataset is built from a board that keeps every judgment"
        );
        let paused: Vec<Address> = board
            .contributors()
            .filter(|(_, c)| c.paused.is_some())
            .map(|(a, _)| *a)
            .collect();
        let mut weights: BTreeMap<Address, u64> = BTreeMap::new();
        let mut rows = if board.spec.schema.is_categorical() {
            categorical_rows(board, &paused, &mut weights)
        } else {
            reviewed_rows(board, &paused, &mut weights)
        };
        if rows.is_empty() {
            return Err(DatasetError::Empty);
        }
        rows.sort_by(|a, b| {
            (a.item, serde_json::to_string(&a.answer).ok())
                .cmp(&(b.item, serde_json::to_string(&b.answer).ok()))
        });
        let item_root =
            MerkleTree::from_leaf_hashes(rows.iter().map(DatasetRow::leaf_hash).collect()).root();
        let contributors = weights
            .into_iter()
            .map(|(account, weight)| Member { account, weight })
            .collect();
        Ok(Dataset {
            schema: board.spec.schema.clone(),
            method: board.spec.method.code(),
            rows,
            item_root,
            contributors,
        })
    }

    /// The content hash the asset manifest carries: the schema, the method and the item root.
    pub fn content_hash(&self) -> Hash32 {
        let schema = serde_json::to_vec(&self.schema).expect("schemas serialise");
        keccak256_parts(&[&schema, self.method.as_bytes(), &self.item_root.0])
    }

    /// A dataset asset manifest: contributors share `1 − curator_share` by weight; the curator
    /// (the requester, as owner) keeps `curator_share` as the developer role.
    pub fn manifest(
        &self,
        name: String,
        owner: Address,
        licence: Licence,
        curator_share: Ppm,
    ) -> Result<Manifest, DatasetError> {
        if curator_share == Ppm::ONE {
            return Err(DatasetError::CuratorShare(curator_share.parts()));
        }
        let contributor_share = Ppm::new(Ppm::ONE.parts() - curator_share.parts())
            .expect("below 100% by the check above");
        let mut roles = vec![RoleShare {
            role: Role::DataContributor,
            share: contributor_share,
            members: self.contributors.clone(),
        }];
        if curator_share != Ppm::ZERO {
            roles.push(RoleShare {
                role: Role::Developer,
                share: curator_share,
                members: vec![Member {
                    account: owner,
                    weight: 1,
                }],
            });
        }
        Ok(Manifest {
            kind: AssetKind::Dataset,
            name,
            owner,
            content: self.content_hash(),
            licence,
            parents: Vec::new(),
            roles,
        })
    }
}

/// Stands in as the second category when every judgment chose the same option set.
const UNCHOSEN_CATEGORY: &str = "\u{0}unchosen";

fn skill_weight(skill: f64) -> u64 {
    ((skill.clamp(0.0, 1.0) * 1000.0).round() as u64).max(1)
}

fn categorical_rows(
    board: &Board,
    paused: &[Address],
    weights: &mut BTreeMap<Address, u64>,
) -> Vec<DatasetRow> {
    let judgments: Vec<&Judgment> = board.judgments().map(|(_, j)| j).collect();
    let counted = |j: &&&Judgment| {
        !j.gold && j.counts() && !paused.contains(&j.contributor) && {
            board.items()[j.item as usize].resolved
        }
    };
    let mut categories: Vec<String> = board.spec.schema.categories().unwrap_or_default();
    let mut answer_of: FxHashMap<String, Answer> = FxHashMap::default();
    for j in judgments.iter().filter(counted) {
        let category = j.answer.category().expect("categorical");
        if !categories.contains(&category) {
            categories.push(category.clone());
        }
        answer_of
            .entry(category)
            .or_insert_with(|| j.answer.clone());
    }
    if categories.len() < 2 {
        // Inference needs two categories to choose between; this one is never voted for.
        categories.push(UNCHOSEN_CATEGORY.to_owned());
    }
    let mut answers = Answers::new(categories).expect("distinct categories");
    for j in judgments.iter().filter(counted) {
        let item = board.items()[j.item as usize].id.to_string();
        let category = j.answer.category().expect("categorical");
        answers
            .push(&item, &j.contributor.to_string(), &category)
            .expect("category listed");
    }
    if answers.judgments().is_empty() {
        return Vec::new();
    }
    let result = infer(&answers, board.spec.method);
    let skill_of: FxHashMap<String, f64> = (0..answers.worker_count() as u32)
        .map(|w| {
            (
                answers.worker_key(w).to_owned(),
                result.worker_skill[w as usize],
            )
        })
        .collect();
    let mut rows = Vec::with_capacity(answers.item_count());
    let mut backers: FxHashMap<String, Vec<Address>> = FxHashMap::default();
    for j in judgments.iter().filter(counted) {
        let item = board.items()[j.item as usize].id.to_string();
        let label = result.labels[answers.item_index(&item).expect("pushed") as usize];
        if j.answer.category().as_deref() == Some(answers.label_name(label)) {
            backers.entry(item).or_default().push(j.contributor);
            *weights.entry(j.contributor).or_default() +=
                skill_weight(skill_of[&j.contributor.to_string()]);
        }
    }
    for index in 0..answers.item_count() as u32 {
        let key = answers.item_key(index);
        let category = answers.label_name(result.labels[index as usize]);
        let mut contributors = backers.remove(key).unwrap_or_default();
        contributors.sort();
        rows.push(DatasetRow {
            item: ItemId(key.parse().expect("item ids print as hex")),
            answer: answer_of[category].clone(),
            confidence: result.confidence[index as usize],
            contributors,
        });
    }
    rows
}

fn reviewed_rows(
    board: &Board,
    paused: &[Address],
    weights: &mut BTreeMap<Address, u64>,
) -> Vec<DatasetRow> {
    let mut rows = Vec::new();
    for (_, j) in board.judgments() {
        if j.gold || paused.contains(&j.contributor) {
            continue;
        }
        let answer = match &j.status {
            JudgmentStatus::Accepted => j.answer.clone(),
            JudgmentStatus::Fixed(fixed) => fixed.clone(),
            _ => continue,
        };
        let skill = board.contributor(&j.contributor).map_or(0.8, |c| c.skill());
        *weights.entry(j.contributor).or_default() += skill_weight(skill);
        rows.push(DatasetRow {
            item: board.items()[j.item as usize].id,
            answer,
            confidence: 1.0,
            contributors: vec![j.contributor],
        });
    }
    rows
}

#[cfg(test)]
mod tests;
