//! Paid classifications with first-party classifiers (linfa models from the artifact store,
//! with the sentence encoder attached when they read embeddings).

use std::sync::Arc;

use caravan_core::{Amount, CallPart, Hash32};
use caravan_models::Classifier;
use serde_json::{Value, json};

use super::{Gateway, GatewayError, MAX_INPUTS, Served, ServedModel};
use crate::keys::ApiKey;

impl Gateway {
    pub(crate) fn classifier(&self, model: &ServedModel) -> Result<Arc<Classifier>, GatewayError> {
        if let Some(loaded) = self
            .classifiers
            .lock()
            .expect("classifier cache lock")
            .get(&model.content)
        {
            return Ok(Arc::clone(loaded));
        }
        let bytes = self.artifacts.get(&model.content).map_err(|e| {
            GatewayError::NotServed(format!(
                "model {} is not a classifier this node holds: {e}",
                model.name
            ))
        })?;
        let mut classifier = Classifier::from_artifact(&bytes).map_err(|e| {
            GatewayError::NotServed(format!("model {} cannot be loaded: {e}", model.name))
        })?;
        if let Some(weights) = classifier.encoder_weights() {
            let encoder = self.encoder.get(&weights).map_err(|e| {
                GatewayError::NotServed(format!(
                    "model {} reads sentence embeddings: {e}",
                    model.name
                ))
            })?;
            classifier = classifier
                .with_encoder(encoder)
                .map_err(|e| GatewayError::NotServed(e.to_string()))?;
        }
        let classifier = Arc::new(classifier);
        self.classifiers
            .lock()
            .expect("classifier cache lock")
            .insert(model.content, Arc::clone(&classifier));
        Ok(classifier)
    }

    /// Classifies `inputs` (item data objects) with a first-party classifier, charging the
    /// model's price per input once the answers exist. Blocking: it waits for the charge to be
    /// durable.
    pub fn classify(
        &self,
        key: &ApiKey,
        model_name: &str,
        inputs: Vec<Value>,
        request: Option<Hash32>,
    ) -> Result<Served, GatewayError> {
        if inputs.is_empty() || inputs.len() > MAX_INPUTS {
            return Err(GatewayError::BadParam {
                param: "input".into(),
                message: format!(
                    "send 1 to {MAX_INPUTS} inputs (an object of item fields, or an array of them); got {}",
                    inputs.len()
                ),
            });
        }
        let model = self.resolve(model_name)?;
        let classifier = self.classifier(&model)?;
        let count = inputs.len() as u32;
        let cost = model
            .price_per_call
            .checked_mul(Amount::from(count))
            .ok_or_else(|| GatewayError::BadRequest("the call's cost overflows 2^128".into()))?;
        let hold = self.hold(key, model.token, cost)?;
        let refs: Vec<&Value> = inputs.iter().collect();
        let predictions = classifier.predict_many(&refs).map_err(|error| {
            // Name the first input that fails on its own; the batch's error otherwise.
            let (index, error) = inputs
                .iter()
                .enumerate()
                .find_map(|(i, input)| classifier.predict(input).err().map(|e| (i, e)))
                .unwrap_or((0, error));
            GatewayError::BadParam {
                param: format!("input[{index}]"),
                message: format!("input {index}: {error}"),
            }
        })?;
        let data: Vec<Value> = predictions
            .into_iter()
            .enumerate()
            .map(|(index, prediction)| {
                let probabilities: serde_json::Map<String, Value> = prediction
                    .probabilities
                    .iter()
                    .map(|(label, p)| (label.clone(), json!(p)))
                    .collect();
                json!({
                    "object": "classification",
                    "index": index,
                    "label": prediction.label,
                    "confidence": prediction.confidence,
                    "probabilities": probabilities,
                })
            })
            .collect();
        let trace = json!([{ "asset": model.asset, "model": model.name, "inputs": count, "cost": cost.to_string() }]);
        let (seq, at_ms) = self.charge(
            hold,
            key,
            &model,
            vec![CallPart {
                asset: model.asset,
                amount: cost,
                calls: count,
            }],
            trace,
            request,
        )?;
        let id = format!("clf-{seq}");
        let body = json!({
            "id": id,
            "object": "list",
            "model": model.name,
            "data": data,
            "usage": { "inputs": count, "cost": cost.to_string(), "token": model.token },
        });
        Ok(self.receipted(body, &id, key, &model, cost, count, at_ms))
    }
}
