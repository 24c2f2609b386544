//! Classifiers trained with linfa's multinomial logistic regression on features fitted to the
//! data, evaluated on a held-out split, and stored as one self-contained artifact.

use std::collections::BTreeSet;
use std::sync::Arc;

use caravan_core::Hash32;
use linfa::prelude::*;
use linfa_logistic::{MultiFittedLogisticRegression, MultiLogisticRegression};
use ndarray::{Array1, Array2};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::embedding::SentenceEncoder;
use crate::features::{FeatureError, FeatureSpec, TextFeatures};

/// The artifact format this build writes and reads.
pub const ARTIFACT_FORMAT: u32 = 1;

/// One labelled example: an item's data and its label. `key` (the item's id) decides, by hash,
/// whether the example is held out for evaluation, so the split is the same on every run and
/// an item never moves between the two sides when a dataset grows.
#[derive(Clone, Debug, PartialEq)]
pub struct Example {
    pub key: Hash32,
    pub data: Value,
    pub label: String,
}

/// How to train.
#[derive(Clone, Debug)]
pub struct TrainOptions {
    /// The item fields to learn from; empty chooses them (see [`FeatureSpec::fit`]).
    pub fields: Vec<String>,
    /// With an encoder, text fields become its sentence embeddings; without, TF-IDF.
    pub encoder: Option<Arc<SentenceEncoder>>,
    /// Percent of examples held out for evaluation (0 to 90).
    pub test_percent: u8,
    /// L2 regularisation strength; larger is smoother. The default, 10, was the best of 0.01 to
    /// 100 on the held-out UCI digits (96.9%); below 1 linfa's solver stops early and underfits.
    pub regularisation: f64,
    pub max_iterations: u64,
}

impl Default for TrainOptions {
    fn default() -> Self {
        TrainOptions {
            fields: Vec::new(),
            encoder: None,
            test_percent: 20,
            regularisation: 10.0,
            max_iterations: 200,
        }
    }
}

/// Why a model cannot be trained. Each message says what to change.
#[derive(Debug, thiserror::Error)]
pub enum TrainError {
    #[error(transparent)]
    Features(#[from] FeatureError),
    #[error("the held-out share must be 0 to 90 percent, got {0}")]
    TestPercent(u8),
    #[error(
        "training needs examples of at least two labels; the training split has {0:?} (publish more of the dataset first)"
    )]
    TooFewClasses(Vec<String>),
    #[error(
        "fine-tuning keeps the base model's labels, but the new training data has no example of {0:?}"
    )]
    MissingClass(String),
    #[error(
        "fine-tuning keeps the base model's labels, but the new data has label {0:?} the base model does not know"
    )]
    UnknownClass(String),
    #[error("linfa could not fit the model: {0}")]
    Fit(String),
}

/// A trained classifier: the features it reads, the labels it predicts and linfa's fitted model.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Classifier {
    pub format: u32,
    pub features: FeatureSpec,
    /// Labels in the model's class order.
    pub classes: Vec<String>,
    model: MultiFittedLogisticRegression<f64, usize>,
    /// The sentence encoder features that are embeddings need; not part of the artifact (see
    /// [`Classifier::with_encoder`]).
    #[serde(skip)]
    encoder: Option<Arc<SentenceEncoder>>,
}

/// A prediction for one item.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Prediction {
    pub label: String,
    /// The model's probability for `label`.
    pub confidence: f64,
    /// Every label with its probability, most likely first.
    pub probabilities: Vec<(String, f64)>,
}

/// How well a model did on labelled examples.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Evaluation {
    pub examples: usize,
    pub correct: usize,
    pub accuracy: f64,
    /// Per label: (label, examples with it, predicted right).
    pub per_class: Vec<(String, usize, usize)>,
}

/// A trained model with its report.
#[derive(Debug)]
pub struct Trained {
    pub classifier: Classifier,
    pub train_examples: usize,
    /// On the held-out split; `None` when nothing was held out.
    pub evaluation: Option<Evaluation>,
}

/// Whether an example is held out, from its key: the same on every run.
fn held_out(key: &Hash32, test_percent: u8) -> bool {
    u16::from_be_bytes([key.0[0], key.0[1]]) % 100 < u16::from(test_percent)
}

fn split(examples: &[Example], test_percent: u8) -> (Vec<&Example>, Vec<&Example>) {
    examples
        .iter()
        .partition(|e| !held_out(&e.key, test_percent))
}

fn matrix(
    features: &FeatureSpec,
    examples: &[&Example],
    encoder: Option<&SentenceEncoder>,
) -> Result<Array2<f64>, FeatureError> {
    let data: Vec<&Value> = examples.iter().map(|e| &e.data).collect();
    let values = features.transform_rows(&data, encoder)?;
    Ok(
        Array2::from_shape_vec((examples.len(), features.width()), values)
            .expect("one row per example"),
    )
}

impl Classifier {
    /// Trains a new classifier on `examples`, holding out `options.test_percent` for evaluation.
    pub fn train(examples: &[Example], options: &TrainOptions) -> Result<Trained, TrainError> {
        if options.test_percent > 90 {
            return Err(TrainError::TestPercent(options.test_percent));
        }
        let (train, test) = split(examples, options.test_percent);
        let data: Vec<&Value> = train.iter().map(|e| &e.data).collect();
        let text = match &options.encoder {
            Some(encoder) => TextFeatures::Embeddings(encoder),
            None => TextFeatures::TfIdf,
        };
        let features = FeatureSpec::fit(&data, &options.fields, text)?;
        let classes: Vec<String> = train
            .iter()
            .map(|e| e.label.clone())
            .collect::<BTreeSet<_>>()
            .into_iter()
            .collect();
        if classes.len() < 2 {
            return Err(TrainError::TooFewClasses(classes));
        }
        let encoder = features.encoder_weights().and(options.encoder.clone());
        fit(features, classes, encoder, &train, &test, options, None)
    }

    /// Trains a child of `self` on `examples`: the same features and labels, starting from this
    /// model's weights.
    pub fn finetune(
        &self,
        examples: &[Example],
        options: &TrainOptions,
    ) -> Result<Trained, TrainError> {
        if options.test_percent > 90 {
            return Err(TrainError::TestPercent(options.test_percent));
        }
        let (train, test) = split(examples, options.test_percent);
        let seen: BTreeSet<&str> = train.iter().map(|e| e.label.as_str()).collect();
        if let Some(unknown) = seen.iter().find(|l| !self.classes.iter().any(|c| c == *l)) {
            return Err(TrainError::UnknownClass(unknown.to_string()));
        }
        if let Some(missing) = self.classes.iter().find(|c| !seen.contains(c.as_str())) {
            return Err(TrainError::MissingClass(missing.clone()));
        }
        let params = self.model.params();
        let mut start = Array2::zeros((params.nrows() + 1, params.ncols()));
        start
            .slice_mut(ndarray::s![..params.nrows(), ..])
            .assign(params);
        start.row_mut(params.nrows()).assign(self.model.intercept());
        fit(
            self.features.clone(),
            self.classes.clone(),
            self.encoder.clone(),
            &train,
            &test,
            options,
            Some(start),
        )
    }

    /// The encoder weights this model needs attached before it can predict, if its features
    /// are sentence embeddings.
    pub fn encoder_weights(&self) -> Option<Hash32> {
        self.features.encoder_weights()
    }

    /// Attaches the sentence encoder a model trained on embeddings reads its text with; refuses
    /// weights other than the ones it was trained with.
    pub fn with_encoder(
        mut self,
        encoder: Arc<SentenceEncoder>,
    ) -> Result<Classifier, FeatureError> {
        self.features.check_encoder(&encoder)?;
        self.encoder = Some(encoder);
        Ok(self)
    }

    /// Predicts one item's label.
    pub fn predict(&self, data: &Value) -> Result<Prediction, FeatureError> {
        Ok(self.predict_many(&[data])?.remove(0))
    }

    /// Predicts the labels of several items at once (sentence embeddings are computed in
    /// batches, which is several times faster than one by one).
    pub fn predict_many(&self, items: &[&Value]) -> Result<Vec<Prediction>, FeatureError> {
        let rows = self
            .features
            .transform_rows(items, self.encoder.as_deref())?;
        let x = Array2::from_shape_vec((items.len(), self.features.width()), rows)
            .expect("one row per item");
        let probabilities = self.model.predict_probabilities(&x);
        Ok(probabilities
            .rows()
            .into_iter()
            .map(|row| {
                let mut ranked: Vec<(String, f64)> = self
                    .model
                    .classes()
                    .iter()
                    .zip(row)
                    .map(|(class, p)| (self.classes[*class].clone(), *p))
                    .collect();
                ranked.sort_by(|a, b| b.1.total_cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
                Prediction {
                    label: ranked[0].0.clone(),
                    confidence: ranked[0].1,
                    probabilities: ranked,
                }
            })
            .collect())
    }

    /// Scores the model on labelled examples (a held-out split, or a validator's own data).
    pub fn evaluate(&self, examples: &[Example]) -> Result<Evaluation, FeatureError> {
        let refs: Vec<&Example> = examples.iter().collect();
        self.evaluate_refs(&refs)
    }

    fn evaluate_refs(&self, examples: &[&Example]) -> Result<Evaluation, FeatureError> {
        let x = matrix(&self.features, examples, self.encoder.as_deref())?;
        let predicted: Array1<usize> = self.model.predict(&x);
        let mut per_class: Vec<(String, usize, usize)> = Vec::new();
        let mut correct = 0;
        for (example, class) in examples.iter().zip(predicted.iter()) {
            let right = self.classes[*class] == example.label;
            correct += usize::from(right);
            match per_class.iter_mut().find(|(l, _, _)| *l == example.label) {
                Some(entry) => {
                    entry.1 += 1;
                    entry.2 += usize::from(right);
                }
                None => per_class.push((example.label.clone(), 1, usize::from(right))),
            }
        }
        per_class.sort();
        Ok(Evaluation {
            examples: examples.len(),
            correct,
            accuracy: if examples.is_empty() {
                0.0
            } else {
                correct as f64 / examples.len() as f64
            },
            per_class,
        })
    }

    /// The artifact: canonical JSON of everything needed to serve the model.
    pub fn to_artifact(&self) -> Vec<u8> {
        serde_json::to_vec(self).expect("a classifier serialises")
    }

    /// Reads an artifact written by [`Classifier::to_artifact`].
    pub fn from_artifact(bytes: &[u8]) -> Result<Classifier, String> {
        let classifier: Classifier = serde_json::from_slice(bytes)
            .map_err(|e| format!("not a caravan classifier artifact: {e}"))?;
        if classifier.format != ARTIFACT_FORMAT {
            return Err(format!(
                "artifact format {} is not supported by this build (it reads format {ARTIFACT_FORMAT}); upgrade caravan",
                classifier.format
            ));
        }
        if classifier.model.params().nrows() != classifier.features.width() {
            return Err("the artifact's weights do not match its features".into());
        }
        Ok(classifier)
    }

    /// The artifact's content hash, which the model asset records.
    pub fn content_hash(&self) -> Hash32 {
        caravan_core::keccak256(&self.to_artifact())
    }
}

fn fit(
    features: FeatureSpec,
    classes: Vec<String>,
    encoder: Option<Arc<SentenceEncoder>>,
    train: &[&Example],
    test: &[&Example],
    options: &TrainOptions,
    start: Option<Array2<f64>>,
) -> Result<Trained, TrainError> {
    let x = matrix(&features, train, encoder.as_deref())?;
    let y: Array1<usize> = train
        .iter()
        .map(|e| {
            classes
                .iter()
                .position(|c| *c == e.label)
                .expect("every training label is a class")
        })
        .collect();
    let dataset = linfa::Dataset::new(x, y);
    let mut params = MultiLogisticRegression::default()
        .alpha(options.regularisation)
        .max_iterations(options.max_iterations);
    if let Some(start) = start {
        params = params.initial_params(start);
    }
    let model = params
        .fit(&dataset)
        .map_err(|e| TrainError::Fit(e.to_string()))?;
    let classifier = Classifier {
        format: ARTIFACT_FORMAT,
        features,
        classes,
        model,
        encoder,
    };
    let evaluation = if test.is_empty() {
        None
    } else {
        Some(classifier.evaluate_refs(test)?)
    };
    Ok(Trained {
        classifier,
        train_examples: train.len(),
        evaluation,
    })
}
