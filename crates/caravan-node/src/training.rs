//! What a model is registered as, wherever it is registered (the command line, the demo, and
//! later the API): the examples a classifier learns from published datasets, and the manifest
//! whose lineage pays those datasets (and, through them, the people who labelled them), the
//! base a fine-tune was made from and the embedding model whose encoder the classifier runs.

use caravan_core::lineage::Lineage;
use caravan_core::terms::SharesTooLarge;
use caravan_core::{
    Address, Amount, AssetId, AssetKind, EdgeKind, Hash32, Licence, Manifest, ModelShares,
    ParentEdge, Ppm, Role,
};
use caravan_models::Example;
use caravan_tasks::schema::Answer;

use crate::desk::{Desk, DeskError};
use crate::gateway::embeddings::EncoderServing;

/// Why a model could not be trained or registered as asked.
#[derive(Debug, thiserror::Error)]
pub enum TrainingError {
    #[error(transparent)]
    Desk(#[from] DeskError),
    #[error(
        "dataset {dataset} holds {kind} answers; a classifier learns from single-choice or rating datasets"
    )]
    NotLearnable { dataset: AssetId, kind: String },
    #[error("dataset {dataset} names item {item} its project lacks")]
    MissingItem { dataset: AssetId, item: Hash32 },
    #[error(transparent)]
    Shares(#[from] SharesTooLarge),
    /// The embedding model named to be paid does not run the classifier's encoder.
    #[error(
        "{model} is not an embedding model running the classifier's encoder (weights {weights}); {}",
        serving_list(serving)
    )]
    NotTheEncoder {
        model: AssetId,
        weights: Hash32,
        serving: Vec<String>,
    },
    /// Several embedding models run the classifier's encoder and none was named.
    #[error(
        "several embedding models run the classifier's encoder: {}; name the one to pay",
        serving.join(", ")
    )]
    SeveralEncoders { serving: Vec<String> },
}

fn serving_list(serving: &[String]) -> String {
    if serving.is_empty() {
        "no embedding model on this node runs it; register one with `caravan model embedder`"
            .to_owned()
    } else {
        format!("those that do: {}", serving.join(", "))
    }
}

/// The examples in published `datasets` a classifier learns from: each row's item data with
/// its resolved answer as the label.
pub fn training_examples(desk: &Desk, datasets: &[AssetId]) -> Result<Vec<Example>, TrainingError> {
    let mut examples = Vec::new();
    for asset in datasets {
        let (_, dataset, board) = desk.dataset(asset)?;
        for row in &dataset.rows {
            let label = match &row.answer {
                Answer::Choice(choice) => choice.clone(),
                Answer::Rating(rating) => rating.to_string(),
                _ => {
                    return Err(TrainingError::NotLearnable {
                        dataset: *asset,
                        kind: dataset.schema.answer_kind().to_string(),
                    });
                }
            };
            let item = board.item(&row.item).ok_or(TrainingError::MissingItem {
                dataset: *asset,
                item: row.item.0,
            })?;
            examples.push(Example {
                key: row.item.0,
                data: item.item.data.clone(),
                label,
            });
        }
    }
    Ok(examples)
}

/// Who a model belongs to and what a call to it costs.
#[derive(Clone, Debug)]
pub struct ModelTerms {
    pub name: String,
    /// The owner's role: developer, or fine-tuner for a fine-tune.
    pub role: Role,
    pub owner: Address,
    pub token: Address,
    pub price_per_call: Amount,
    pub shares: ModelShares,
}

impl ModelTerms {
    /// The manifest of a model with these terms, `content` and `parents`.
    fn manifest(
        &self,
        content: Hash32,
        parents: Vec<ParentEdge>,
    ) -> Result<Manifest, SharesTooLarge> {
        let mut manifest = Manifest {
            kind: AssetKind::Model,
            name: self.name.clone(),
            owner: self.owner,
            content,
            licence: self.shares.licence(self.token, self.price_per_call),
            parents,
            roles: self.shares.roles(self.role, self.owner)?,
        };
        manifest.normalise();
        Ok(manifest)
    }

    /// A model without parents (served by an upstream or by the node's sentence encoder).
    pub fn standalone(&self, content: Hash32) -> Result<Manifest, SharesTooLarge> {
        self.manifest(content, Vec::new())
    }
}

/// The encoder a classifier runs on every call, and how its embedding model is to be paid.
#[derive(Clone, Debug)]
pub struct EncoderPayment {
    /// The encoder's weights, as the classifier's artifact names them.
    pub weights: Hash32,
    /// The embedding model to pay; when `None`, the only one running these weights.
    pub model: Option<AssetId>,
    /// Its share of the classifier's revenue; when `None`, the least its licence accepts.
    pub share: Option<Ppm>,
}

/// What a trained classifier learned from and runs on.
#[derive(Clone, Debug)]
pub struct TrainedFrom {
    pub datasets: Vec<AssetId>,
    /// Each dataset's share of the model's revenue.
    pub dataset_share: Ppm,
    /// For a fine-tune: the base model and its share.
    pub base: Option<(AssetId, Ppm)>,
    /// For a classifier running a sentence encoder (not a fine-tune, which pays the encoder
    /// through its base).
    pub encoder: Option<EncoderPayment>,
}

/// A trained model's manifest, and the edge that pays its encoder's embedding model (`None`
/// when it runs no encoder, or none registered here runs it: nobody is owed for it).
#[derive(Clone, Debug)]
pub struct TrainedModel {
    pub manifest: Manifest,
    pub encoder_edge: Option<ParentEdge>,
}

/// The manifest of a classifier with `terms` and artifact `content`, trained as `from` says:
/// `TRAINED_ON` each dataset, `FINETUNED_FROM` its base (first), and `DERIVED_FROM` the
/// embedding model whose encoder it runs, among `encoders` (those registered here).
pub fn trained_model(
    terms: &ModelTerms,
    content: Hash32,
    from: TrainedFrom,
    lineage: &Lineage,
    encoders: &[(AssetId, EncoderServing)],
) -> Result<TrainedModel, TrainingError> {
    let mut parents: Vec<ParentEdge> = Vec::new();
    if let Some((parent, share)) = from.base {
        parents.push(ParentEdge {
            parent,
            kind: EdgeKind::FinetunedFrom,
            share,
        });
    }
    parents.extend(from.datasets.iter().map(|dataset| ParentEdge {
        parent: *dataset,
        kind: EdgeKind::TrainedOn,
        share: from.dataset_share,
    }));
    let encoder_edge = match &from.encoder {
        Some(payment) => encoder_edge(payment, lineage, encoders)?,
        None => None,
    };
    parents.extend(encoder_edge.clone());
    Ok(TrainedModel {
        manifest: terms.manifest(content, parents)?,
        encoder_edge,
    })
}

/// The `DERIVED_FROM` edge to the embedding model `payment` names (it must run the weights),
/// or the only one running them; none when no embedding model runs them.
fn encoder_edge(
    payment: &EncoderPayment,
    lineage: &Lineage,
    encoders: &[(AssetId, EncoderServing)],
) -> Result<Option<ParentEdge>, TrainingError> {
    let serving: Vec<AssetId> = encoders
        .iter()
        .filter(|(_, serving)| serving.weights == payment.weights)
        .map(|(asset, _)| *asset)
        .collect();
    let described = || {
        serving
            .iter()
            .map(|asset| {
                let name = lineage.get(asset).map_or("?", |a| a.manifest.name.as_str());
                format!("{asset} ({name})")
            })
            .collect::<Vec<_>>()
    };
    let model = match (payment.model, serving.as_slice()) {
        (Some(asset), _) if serving.contains(&asset) => asset,
        (Some(asset), _) => {
            return Err(TrainingError::NotTheEncoder {
                model: asset,
                weights: payment.weights,
                serving: described(),
            });
        }
        (None, []) => return Ok(None),
        (None, [only]) => *only,
        (None, _) => {
            return Err(TrainingError::SeveralEncoders {
                serving: described(),
            });
        }
    };
    let least = match lineage.get(&model).map(|a| &a.manifest.licence) {
        Some(Licence::Commercial {
            derivative_royalty, ..
        }) => *derivative_royalty,
        _ => Ppm::ZERO,
    };
    Ok(Some(ParentEdge {
        parent: model,
        kind: EdgeKind::DerivedFrom,
        share: payment.share.unwrap_or(least),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn terms(name: &str, role: Role) -> ModelTerms {
        ModelTerms {
            name: name.into(),
            role,
            owner: Address::from_label(name),
            token: Address::from_label("usdc"),
            price_per_call: 2_000,
            shares: ModelShares::default(),
        }
    }

    fn serving(weights: &str) -> EncoderServing {
        EncoderServing {
            encoder: "all-MiniLM-L6-v2".into(),
            weights: caravan_core::keccak256(weights.as_bytes()),
            dimensions: 384,
            input_per_million: 10,
        }
    }

    /// A lineage with two embedding models on the same weights and one on others, each asking
    /// derivatives for the default 10%.
    fn embedders() -> (Lineage, Vec<(AssetId, EncoderServing)>) {
        let mut lineage = Lineage::default();
        let mut encoders = Vec::new();
        for (name, weights) in [("mini", "minilm"), ("mini-eu", "minilm"), ("big", "mpnet")] {
            let serving = serving(weights);
            let manifest = terms(name, Role::Developer)
                .standalone(serving.content_hash())
                .unwrap();
            let (id, _) = lineage.register(manifest).unwrap();
            encoders.push((id, serving));
        }
        (lineage, encoders)
    }

    /// A classifier trained on one dataset, paying for its encoder as `payment` says.
    fn classify_paying(
        payment: EncoderPayment,
        lineage: &Lineage,
        encoders: &[(AssetId, EncoderServing)],
    ) -> Result<TrainedModel, TrainingError> {
        let terms = terms("classifier", Role::Developer);
        trained_model(
            &terms,
            Hash32([7; 32]),
            from(Some(payment)),
            lineage,
            encoders,
        )
    }

    fn from(encoder: Option<EncoderPayment>) -> TrainedFrom {
        TrainedFrom {
            datasets: vec![AssetId(caravan_core::keccak256(b"reviews"))],
            dataset_share: Ppm::new(200_000).unwrap(),
            base: None,
            encoder,
        }
    }

    #[test]
    fn a_classifier_pays_the_only_embedding_model_running_its_encoder_the_least_it_asks() {
        let (lineage, encoders) = embedders();
        let payment = EncoderPayment {
            weights: serving("mpnet").weights,
            model: None,
            share: None,
        };
        let model = classify_paying(payment, &lineage, &encoders).unwrap();
        let edge = model.encoder_edge.clone().expect("big runs mpnet");
        assert_eq!(edge.parent, encoders[2].0);
        assert_eq!(edge.kind, EdgeKind::DerivedFrom);
        assert_eq!(edge.share, ModelShares::default().derivative_royalty);
        let kinds: Vec<EdgeKind> = model.manifest.parents.iter().map(|p| p.kind).collect();
        assert!(kinds.contains(&EdgeKind::TrainedOn) && kinds.contains(&EdgeKind::DerivedFrom));
        assert_eq!(model.manifest.kind, AssetKind::Model);
    }

    #[test]
    fn several_encoders_must_be_chosen_between_and_a_wrong_choice_says_which_run_it() {
        let (lineage, encoders) = embedders();
        let weights = serving("minilm").weights;
        let ambiguous = EncoderPayment {
            weights,
            model: None,
            share: None,
        };
        let error = classify_paying(ambiguous, &lineage, &encoders)
            .unwrap_err()
            .to_string();
        assert!(
            error.contains("several") && error.contains("(mini)") && error.contains("(mini-eu)"),
            "{error}"
        );
        let wrong = EncoderPayment {
            weights,
            model: Some(encoders[2].0),
            share: None,
        };
        let error = classify_paying(wrong, &lineage, &encoders)
            .unwrap_err()
            .to_string();
        assert!(
            error.contains("those that do") && !error.contains("(big)"),
            "{error}"
        );
        let nobody_runs_it = EncoderPayment {
            weights: serving("e5").weights,
            model: Some(encoders[0].0),
            share: None,
        };
        let error = classify_paying(nobody_runs_it, &lineage, &encoders)
            .unwrap_err()
            .to_string();
        assert!(error.contains("caravan model embedder"), "{error}");
        let chosen = EncoderPayment {
            weights,
            model: Some(encoders[1].0),
            share: Some(Ppm::new(150_000).unwrap()),
        };
        let edge = classify_paying(chosen, &lineage, &encoders)
            .unwrap()
            .encoder_edge
            .unwrap();
        assert_eq!((edge.parent, edge.share.parts()), (encoders[1].0, 150_000));
    }

    #[test]
    fn a_classifier_whose_encoder_nobody_registered_owes_no_one_for_it() {
        let (lineage, encoders) = embedders();
        let payment = EncoderPayment {
            weights: serving("e5").weights,
            model: None,
            share: None,
        };
        let model = classify_paying(payment, &lineage, &encoders).unwrap();
        assert!(model.encoder_edge.is_none());
        assert_eq!(model.manifest.parents.len(), 1, "only the dataset");
    }

    #[test]
    fn a_fine_tune_names_its_base_and_belongs_to_its_fine_tuner() {
        let base = AssetId(caravan_core::keccak256(b"base model"));
        let model = trained_model(
            &terms("tuned", Role::FineTuner),
            Hash32([8; 32]),
            TrainedFrom {
                base: Some((base, Ppm::new(300_000).unwrap())),
                ..from(None)
            },
            &Lineage::default(),
            &[],
        )
        .unwrap();
        let edge = model
            .manifest
            .parents
            .iter()
            .find(|p| p.kind == EdgeKind::FinetunedFrom)
            .expect("the base is a parent");
        assert_eq!((edge.parent, edge.share.parts()), (base, 300_000));
        assert!(
            model
                .manifest
                .roles
                .iter()
                .any(|r| r.role == Role::FineTuner && r.share.parts() == 700_000)
        );
    }

    #[test]
    fn shares_leaving_the_owner_nothing_are_refused() {
        let mut greedy = terms("greedy", Role::Developer);
        greedy.shares.validator = Ppm::new(600_000).unwrap();
        greedy.shares.compute = Ppm::new(500_000).unwrap();
        assert!(matches!(
            greedy.standalone(Hash32([1; 32])),
            Err(SharesTooLarge { .. })
        ));
    }
}
