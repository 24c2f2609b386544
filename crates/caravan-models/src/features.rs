//! Turning item data (a JSON object of named fields) into the numbers a classifier learns from.
//!
//! A [`FeatureSpec`] is fitted once, on the training examples, and stored inside the model
//! artifact, so serving computes exactly the features training saw: the same fields in the same
//! order, the same scaling, the same vocabulary.

use std::collections::{BTreeMap, BTreeSet};

use caravan_core::Hash32;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::embedding::SentenceEncoder;

/// Terms kept in a TF-IDF vocabulary: the most frequent ones across training documents.
pub const MAX_VOCABULARY: usize = 4_096;
/// A term must appear in at least this many training documents to enter the vocabulary, so
/// one-off tokens (ids, typos) do not become features.
const MIN_DOCUMENT_FREQUENCY: usize = 2;

/// How item data becomes a feature vector.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "kind")]
pub enum FeatureSpec {
    /// Numbers and arrays of numbers (pixels, measurements), flattened in field order and
    /// standardised with the training data's mean and spread.
    Numeric {
        fields: Vec<String>,
        /// How many numbers each field holds (1 for a scalar).
        widths: Vec<usize>,
        mean: Vec<f64>,
        /// Standard deviation per feature; 1 where the training data did not vary.
        scale: Vec<f64>,
    },
    /// Text fields, concatenated, as TF-IDF over the training vocabulary, L2-normalised.
    TfIdf {
        fields: Vec<String>,
        vocabulary: Vec<String>,
        idf: Vec<f64>,
    },
    /// Text fields, concatenated, as a sentence embedding: the meaning of the text rather than
    /// its words, so a model learns from few examples and understands words it never saw.
    /// Serving needs the same encoder weights ([`FeatureSpec::encoder_weights`]).
    SentenceEmbedding {
        fields: Vec<String>,
        /// The encoder's name, for people (e.g. all-MiniLM-L6-v2).
        encoder: String,
        /// keccak-256 of the encoder's weights: serving refuses any other weights.
        weights: Hash32,
        dimensions: usize,
    },
}

/// What text fields become when a model is trained.
#[derive(Clone, Copy, Debug, Default)]
pub enum TextFeatures<'a> {
    /// TF-IDF over the training vocabulary: needs nothing installed.
    #[default]
    TfIdf,
    /// Sentence embeddings from this encoder.
    Embeddings(&'a SentenceEncoder),
}

/// Why item data cannot be turned into features. Each message names the field and the fix.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum FeatureError {
    #[error("item data must be a JSON object of named fields")]
    NotAnObject,
    #[error("there are no examples to learn features from")]
    NoExamples,
    #[error(
        "no field to learn from: item data has no number, array of numbers or text field (fields seen: {0})"
    )]
    NothingUsable(String),
    #[error("field {0:?} is missing from the item data; send every field the model was trained on")]
    MissingField(String),
    #[error("field {field:?} must be {expected}")]
    WrongType {
        field: String,
        expected: &'static str,
    },
    #[error("field {field:?} holds {found} numbers; the model was trained on {expected}")]
    WrongWidth {
        field: String,
        expected: usize,
        found: usize,
    },
    #[error("field {field:?} mixes text and numbers across items; pick the fields with --fields")]
    MixedFields { field: String },
    #[error("no training text has a term that appears in {MIN_DOCUMENT_FREQUENCY} or more items")]
    EmptyVocabulary,
    #[error(
        "this model reads sentence embeddings from {encoder}, which is not loaded; install it with `{install}`",
        install = crate::embedding::INSTALL_COMMAND
    )]
    EncoderNeeded { encoder: String },
    #[error(
        "this model was trained on {encoder} weights {expected}, but the loaded weights are {found}; install the weights it was trained with"
    )]
    EncoderMismatch {
        encoder: String,
        expected: Hash32,
        found: Hash32,
    },
    #[error("the sentence encoder failed: {0}")]
    Encoder(String),
}

/// The kind of value a field holds, judged from the first example.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum FieldKind {
    Number,
    Numbers(usize),
    Text,
}

fn field_kind(value: &Value) -> Option<FieldKind> {
    match value {
        Value::Number(_) => Some(FieldKind::Number),
        Value::String(_) => Some(FieldKind::Text),
        Value::Array(values) if !values.is_empty() && values.iter().all(Value::is_number) => {
            Some(FieldKind::Numbers(values.len()))
        }
        _ => None,
    }
}

fn object(data: &Value) -> Result<&serde_json::Map<String, Value>, FeatureError> {
    data.as_object().ok_or(FeatureError::NotAnObject)
}

impl FeatureSpec {
    /// Fits features to the training data. With `fields` empty the fields are chosen from the
    /// first example: arrays of numbers if there are any (pixels; a scalar beside them, such as
    /// an image number, is usually an id, not a feature), else text fields, else scalar numbers.
    /// Text becomes what `text` says.
    pub fn fit(
        data: &[&Value],
        fields: &[String],
        text_features: TextFeatures,
    ) -> Result<FeatureSpec, FeatureError> {
        let first = object(data.first().ok_or(FeatureError::NoExamples)?)?;
        let chosen: Vec<(String, FieldKind)> = if fields.is_empty() {
            let kinds: Vec<(String, FieldKind)> = first
                .iter()
                .filter_map(|(name, value)| field_kind(value).map(|kind| (name.clone(), kind)))
                .collect();
            let pick = |wanted: fn(FieldKind) -> bool| -> Vec<(String, FieldKind)> {
                kinds.iter().filter(|(_, k)| wanted(*k)).cloned().collect()
            };
            let arrays = pick(|k| matches!(k, FieldKind::Numbers(_)));
            let texts = pick(|k| k == FieldKind::Text);
            if !arrays.is_empty() {
                arrays
            } else if !texts.is_empty() {
                texts
            } else {
                pick(|k| k == FieldKind::Number)
            }
        } else {
            fields
                .iter()
                .map(|name| {
                    let value = first
                        .get(name)
                        .ok_or_else(|| FeatureError::MissingField(name.clone()))?;
                    field_kind(value)
                        .map(|kind| (name.clone(), kind))
                        .ok_or_else(|| FeatureError::WrongType {
                            field: name.clone(),
                            expected: "a number, an array of numbers or text",
                        })
                })
                .collect::<Result<_, _>>()?
        };
        if chosen.is_empty() {
            let seen: Vec<&str> = first.keys().map(String::as_str).collect();
            return Err(FeatureError::NothingUsable(seen.join(", ")));
        }
        let text = chosen.iter().any(|(_, k)| *k == FieldKind::Text);
        if let Some((field, _)) = chosen.iter().find(|(_, k)| (*k == FieldKind::Text) != text) {
            return Err(FeatureError::MixedFields {
                field: field.clone(),
            });
        }
        let names: Vec<String> = chosen.iter().map(|(n, _)| n.clone()).collect();
        if text {
            match text_features {
                TextFeatures::TfIdf => fit_tfidf(data, names),
                TextFeatures::Embeddings(encoder) => {
                    for item in data {
                        read_text(object(item)?, &names)?;
                    }
                    Ok(FeatureSpec::SentenceEmbedding {
                        fields: names,
                        encoder: crate::embedding::MINILM.to_owned(),
                        weights: encoder.weights_hash(),
                        dimensions: encoder.dimensions(),
                    })
                }
            }
        } else {
            let widths = chosen
                .iter()
                .map(|(_, k)| match k {
                    FieldKind::Numbers(width) => *width,
                    _ => 1,
                })
                .collect();
            fit_numeric(data, names, widths)
        }
    }

    /// How many numbers [`FeatureSpec::transform`] produces.
    pub fn width(&self) -> usize {
        match self {
            FeatureSpec::Numeric { mean, .. } => mean.len(),
            FeatureSpec::TfIdf { vocabulary, .. } => vocabulary.len(),
            FeatureSpec::SentenceEmbedding { dimensions, .. } => *dimensions,
        }
    }

    /// The encoder weights serving must load, for features that are sentence embeddings.
    pub fn encoder_weights(&self) -> Option<Hash32> {
        match self {
            FeatureSpec::SentenceEmbedding { weights, .. } => Some(*weights),
            _ => None,
        }
    }

    /// The fields the model reads.
    pub fn fields(&self) -> &[String] {
        match self {
            FeatureSpec::Numeric { fields, .. }
            | FeatureSpec::TfIdf { fields, .. }
            | FeatureSpec::SentenceEmbedding { fields, .. } => fields,
        }
    }

    /// A short description for people: "64 numbers from pixels" or "TF-IDF over 812 terms of text".
    pub fn describe(&self) -> String {
        match self {
            FeatureSpec::Numeric { fields, mean, .. } => {
                format!("{} numbers from {}", mean.len(), fields.join(", "))
            }
            FeatureSpec::TfIdf {
                fields, vocabulary, ..
            } => format!(
                "TF-IDF over {} terms of {}",
                vocabulary.len(),
                fields.join(", ")
            ),
            FeatureSpec::SentenceEmbedding {
                fields,
                encoder,
                dimensions,
                ..
            } => format!(
                "{encoder} sentence embeddings ({dimensions} numbers) of {}",
                fields.join(", ")
            ),
        }
    }

    /// Refuses `encoder` when these features are sentence embeddings from other weights.
    pub fn check_encoder(&self, encoder: &SentenceEncoder) -> Result<(), FeatureError> {
        match self {
            FeatureSpec::SentenceEmbedding {
                encoder: name,
                weights,
                ..
            } if encoder.weights_hash() != *weights => Err(FeatureError::EncoderMismatch {
                encoder: name.clone(),
                expected: *weights,
                found: encoder.weights_hash(),
            }),
            _ => Ok(()),
        }
    }

    /// The feature vectors of `items`, one row after another. Sentence embeddings need the
    /// encoder the model was trained with; the other features ignore `encoder`.
    pub fn transform_rows(
        &self,
        items: &[&Value],
        encoder: Option<&SentenceEncoder>,
    ) -> Result<Vec<f64>, FeatureError> {
        let mut out = Vec::with_capacity(items.len() * self.width());
        if let FeatureSpec::SentenceEmbedding {
            fields,
            encoder: name,
            ..
        } = self
        {
            let encoder = encoder.ok_or_else(|| FeatureError::EncoderNeeded {
                encoder: name.clone(),
            })?;
            self.check_encoder(encoder)?;
            let texts = items
                .iter()
                .map(|item| read_text(object(item)?, fields))
                .collect::<Result<Vec<_>, _>>()?;
            let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
            let vectors = encoder
                .embed_texts(&refs)
                .map_err(|e| FeatureError::Encoder(e.to_string()))?;
            out.extend(vectors.iter().flatten().map(|v| f64::from(*v)));
            return Ok(out);
        }
        for item in items {
            self.transform_into(item, &mut out)?;
        }
        Ok(out)
    }

    /// The feature vector of one item, appended to `out`; sentence embeddings go through
    /// [`FeatureSpec::transform_rows`], which batches them.
    fn transform_into(&self, data: &Value, out: &mut Vec<f64>) -> Result<(), FeatureError> {
        match self {
            FeatureSpec::Numeric {
                fields,
                widths,
                mean,
                scale,
            } => {
                let start = out.len();
                read_numbers(object(data)?, fields, widths, out)?;
                for (i, value) in out[start..].iter_mut().enumerate() {
                    *value = (*value - mean[i]) / scale[i];
                }
            }
            FeatureSpec::TfIdf {
                fields,
                vocabulary,
                idf,
            } => {
                let text = read_text(object(data)?, fields)?;
                let start = out.len();
                out.resize(start + vocabulary.len(), 0.0);
                let row = &mut out[start..];
                for term in tokens(&text) {
                    if let Ok(index) = vocabulary.binary_search_by(|t| t.as_str().cmp(term)) {
                        row[index] += 1.0;
                    }
                }
                let mut norm = 0.0;
                for (value, idf) in row.iter_mut().zip(idf) {
                    *value *= idf;
                    norm += *value * *value;
                }
                if norm > 0.0 {
                    let norm = norm.sqrt();
                    row.iter_mut().for_each(|v| *v /= norm);
                }
            }
            FeatureSpec::SentenceEmbedding { encoder, .. } => {
                return Err(FeatureError::EncoderNeeded {
                    encoder: encoder.clone(),
                });
            }
        }
        Ok(())
    }

    /// The feature vector of one item, for features that need no encoder.
    pub fn transform(&self, data: &Value) -> Result<Vec<f64>, FeatureError> {
        self.transform_rows(&[data], None)
    }
}

fn read_numbers(
    data: &serde_json::Map<String, Value>,
    fields: &[String],
    widths: &[usize],
    out: &mut Vec<f64>,
) -> Result<(), FeatureError> {
    for (field, width) in fields.iter().zip(widths) {
        let value = data
            .get(field)
            .ok_or_else(|| FeatureError::MissingField(field.clone()))?;
        let wrong = |expected| FeatureError::WrongType {
            field: field.clone(),
            expected,
        };
        match value {
            Value::Number(n) if *width == 1 => out.push(n.as_f64().ok_or(wrong("a number"))?),
            Value::Array(values) => {
                if values.len() != *width {
                    return Err(FeatureError::WrongWidth {
                        field: field.clone(),
                        expected: *width,
                        found: values.len(),
                    });
                }
                for v in values {
                    out.push(v.as_f64().ok_or(wrong("an array of numbers"))?);
                }
            }
            _ if *width == 1 => return Err(wrong("a number")),
            _ => return Err(wrong("an array of numbers")),
        }
    }
    Ok(())
}

fn read_text(
    data: &serde_json::Map<String, Value>,
    fields: &[String],
) -> Result<String, FeatureError> {
    let mut text = String::new();
    for field in fields {
        let value = data
            .get(field)
            .ok_or_else(|| FeatureError::MissingField(field.clone()))?;
        let part = value.as_str().ok_or_else(|| FeatureError::WrongType {
            field: field.clone(),
            expected: "text",
        })?;
        text.push_str(part);
        text.push('\n');
    }
    Ok(text.to_lowercase())
}

/// Lower-cased words of two or more letters or digits.
fn tokens(text: &str) -> impl Iterator<Item = &str> {
    text.split(|c: char| !c.is_alphanumeric())
        .filter(|t| t.chars().count() >= 2)
}

fn fit_numeric(
    data: &[&Value],
    fields: Vec<String>,
    widths: Vec<usize>,
) -> Result<FeatureSpec, FeatureError> {
    let width: usize = widths.iter().sum();
    let mut sum = vec![0.0; width];
    let mut sum_sq = vec![0.0; width];
    let mut row = Vec::with_capacity(width);
    for item in data {
        row.clear();
        read_numbers(object(item)?, &fields, &widths, &mut row)?;
        for (i, v) in row.iter().enumerate() {
            sum[i] += v;
            sum_sq[i] += v * v;
        }
    }
    let n = data.len() as f64;
    let mean: Vec<f64> = sum.iter().map(|s| s / n).collect();
    let scale = sum_sq
        .iter()
        .zip(&mean)
        .map(|(sq, m)| {
            let spread = (sq / n - m * m).max(0.0).sqrt();
            if spread > 1e-12 { spread } else { 1.0 }
        })
        .collect();
    Ok(FeatureSpec::Numeric {
        fields,
        widths,
        mean,
        scale,
    })
}

fn fit_tfidf(data: &[&Value], fields: Vec<String>) -> Result<FeatureSpec, FeatureError> {
    let mut document_frequency: BTreeMap<String, usize> = BTreeMap::new();
    for item in data {
        let text = read_text(object(item)?, &fields)?;
        let distinct: BTreeSet<&str> = tokens(&text).collect();
        for term in distinct {
            *document_frequency.entry(term.to_owned()).or_default() += 1;
        }
    }
    let mut frequent: Vec<(String, usize)> = document_frequency
        .into_iter()
        .filter(|(_, df)| *df >= MIN_DOCUMENT_FREQUENCY)
        .collect();
    if frequent.is_empty() {
        return Err(FeatureError::EmptyVocabulary);
    }
    // Most frequent first, ties by term, so the vocabulary is the same on every machine.
    frequent.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
    frequent.truncate(MAX_VOCABULARY);
    frequent.sort_by(|a, b| a.0.cmp(&b.0));
    let n = data.len() as f64;
    let idf = frequent
        .iter()
        .map(|(_, df)| ((1.0 + n) / (1.0 + *df as f64)).ln() + 1.0)
        .collect();
    Ok(FeatureSpec::TfIdf {
        fields,
        vocabulary: frequent.into_iter().map(|(term, _)| term).collect(),
        idf,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn pixels_are_chosen_over_an_image_number_and_standardised() {
        let a = json!({"image": 1, "pixels": [0, 4, 8]});
        let b = json!({"image": 2, "pixels": [2, 4, 16]});
        let spec = FeatureSpec::fit(&[&a, &b], &[], TextFeatures::TfIdf).unwrap();
        assert_eq!(spec.fields(), ["pixels"]);
        assert_eq!(spec.width(), 3);
        let features = spec.transform(&a).unwrap();
        // Mean 1, spread 1 for the first pixel; the constant second pixel stays at 0.
        assert_eq!(features, vec![-1.0, 0.0, -1.0]);
        let short = json!({"pixels": [1, 2]});
        assert_eq!(
            spec.transform(&short).unwrap_err().to_string(),
            "field \"pixels\" holds 2 numbers; the model was trained on 3"
        );
    }

    #[test]
    fn text_becomes_normalised_tfidf_over_terms_seen_twice() {
        let docs = [
            json!({"text": "great phone, great battery"}),
            json!({"text": "battery died fast"}),
            json!({"text": "great value"}),
        ];
        let refs: Vec<&Value> = docs.iter().collect();
        let spec = FeatureSpec::fit(&refs, &[], TextFeatures::TfIdf).unwrap();
        let FeatureSpec::TfIdf { vocabulary, .. } = &spec else {
            panic!("text gives TF-IDF");
        };
        assert_eq!(vocabulary, &["battery", "great"]);
        let row = spec
            .transform(&json!({"text": "Great GREAT battery"}))
            .unwrap();
        let norm: f64 = row.iter().map(|v| v * v).sum();
        assert!((norm - 1.0).abs() < 1e-9);
        assert!(row[1] > row[0], "great appears twice");
        let unseen = spec.transform(&json!({"text": "nothing known"})).unwrap();
        assert!(unseen.iter().all(|v| *v == 0.0));
    }

    #[test]
    fn bad_fields_are_named() {
        let a = json!({"text": "hello there", "n": 3});
        assert_eq!(
            FeatureSpec::fit(&[&a], &["missing".into()], TextFeatures::TfIdf)
                .unwrap_err()
                .to_string(),
            "field \"missing\" is missing from the item data; send every field the model was trained on"
        );
        assert!(matches!(
            FeatureSpec::fit(&[&a], &["text".into(), "n".into()], TextFeatures::TfIdf),
            Err(FeatureError::MixedFields { .. })
        ));
        assert!(matches!(
            FeatureSpec::fit(&[&json!({"flag": true})], &[], TextFeatures::TfIdf),
            Err(FeatureError::NothingUsable(_))
        ));
    }
}
