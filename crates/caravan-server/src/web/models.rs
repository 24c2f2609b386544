//! The model catalogue, open to anyone: every model and agent this node serves, with its price,
//! licence, the route that serves it, its lineage and its validators' attestations, and a box
//! that makes one paid call with an API key the visitor pastes (the page never stores it).

use std::sync::Arc;

use askama::Template;
use axum::extract::State;
use axum::response::Response;
use caravan_node::Node;

use caravan_core::calendar::utc_minute;

use super::earnings::token_of;
use super::page::{Chrome, Viewer, render};

pub struct ParentView {
    pub id: String,
    pub name: String,
    pub edge: String,
}

pub struct ModelView {
    pub id: String,
    pub name: String,
    pub kind: &'static str,
    pub endpoint: &'static str,
    pub price: String,
    pub symbol: String,
    pub decimals: u8,
    pub parents: Vec<ParentView>,
    pub attestations: Vec<String>,
    /// What the try-it box asks for, by route.
    pub input_hint: &'static str,
}

#[derive(Template)]
#[template(path = "models.html")]
struct ModelsPage {
    chrome: Chrome,
    models: Vec<ModelView>,
    base_url: String,
}

/// `GET /models`.
pub async fn models_page(State(node): State<Arc<Node>>, viewer: Option<Viewer>) -> Response {
    let entries = node.gateway().catalogue();
    let tokens = node.journal().read(|j| j.economy().tokens().clone());
    let origin = node.sessions().origin();
    let models = entries
        .iter()
        .map(|entry| {
            let model = &entry.model;
            let token = token_of(&tokens, &model.token);
            ModelView {
                id: model.asset.to_string(),
                name: model.name.clone(),
                kind: model.kind.name(),
                endpoint: entry.endpoint,
                price: std::iter::once(format!("{} per call", token.format(model.price_per_call)))
                    .chain(entry.metered.iter().map(|(counted, per_million)| {
                        format!("{} per million {counted}", token.format(*per_million))
                    }))
                    .chain(
                        (model.kind == caravan_core::AssetKind::Agent)
                            .then(|| "what each model it calls costs".to_owned()),
                    )
                    .collect::<Vec<_>>()
                    .join(" + "),
                symbol: token.symbol.clone(),
                decimals: token.decimals,
                parents: entry
                    .parents
                    .iter()
                    .map(|p| ParentView {
                        id: p.asset.to_string(),
                        name: p.name.clone(),
                        edge: format!("{} {}", p.kind.name(), p.share),
                    })
                    .collect(),
                attestations: entry
                    .attestations
                    .iter()
                    .map(|a| {
                        format!(
                            "{} {} by {} ({})",
                            a.metric,
                            a.value_micros as f64 / 1e6,
                            super::page::short_address(&a.validator.to_checksum()),
                            utc_minute(a.issued_at_ms)
                        )
                    })
                    .collect(),
                input_hint: match entry.endpoint {
                    "/v1/classifications" => "the item's numbers, separated by commas",
                    "/v1/embeddings" => "a sentence to embed",
                    _ => "a message",
                },
            }
        })
        .collect();
    render(&ModelsPage {
        chrome: match viewer.as_ref() {
            Some(viewer) => Chrome::of(viewer, "models"),
            None => Chrome::anonymous("models"),
        },
        models,
        base_url: format!("{}://{}/v1", origin.scheme(), origin.authority()),
    })
}
