//! The gateway's catalogue: which assets it serves and how (forwarded to an upstream, run by
//! the sentence encoder, an agent's program, or a first-party classifier from the artifact
//! store), registering them, and finding the model a request names.

use std::collections::HashMap;
use std::sync::RwLock;

use caravan_core::lineage::{Lineage, RegisteredAsset};
use caravan_core::{AssetId, AssetKind, EdgeKind, Event, Hash32, Licence, Manifest};
use serde::{Deserialize, Serialize};

use super::agent::AgentProgram;
use super::embeddings::EncoderServing;
use super::upstream::Upstream;
use super::{Gateway, GatewayError, ServedModel};
use crate::access;

/// How the gateway serves an asset, as stored in an access record
/// (`{"type": "upstream_registered", ...}`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "type")]
pub enum ServingRecord {
    /// A model asset served by forwarding to an upstream server; the asset's content hash is
    /// the upstream configuration's.
    UpstreamRegistered { asset: AssetId, upstream: Upstream },
    /// A model asset served by this node's sentence encoder; the asset's content hash is the
    /// encoder configuration's.
    EncoderRegistered {
        asset: AssetId,
        encoder: EncoderServing,
    },
    /// An agent asset and the program it runs; the asset's content hash is the program's.
    AgentRegistered {
        asset: AssetId,
        program: AgentProgram,
    },
}

impl ServingRecord {
    pub const KINDS: [&'static str; 3] = [
        "upstream_registered",
        "encoder_registered",
        "agent_registered",
    ];
}

/// The embedding models registered in `journal`'s log, in registration order, each with the
/// encoder configuration that serves it.
pub fn encoder_models(
    journal: &caravan_store::Journal,
) -> Result<Vec<(AssetId, EncoderServing)>, access::AccessError> {
    Ok(access::recorded(journal, &ServingRecord::KINDS)?
        .into_iter()
        .filter_map(|record| match record {
            ServingRecord::EncoderRegistered { asset, encoder } => Some((asset, encoder)),
            _ => None,
        })
        .collect())
}

/// How the node serves assets of one kind (upstreams, agents, encoders), by asset id.
pub(super) struct Registry<T>(RwLock<HashMap<AssetId, T>>);

impl<T> Default for Registry<T> {
    fn default() -> Self {
        Registry(RwLock::new(HashMap::new()))
    }
}

impl<T: Clone> Registry<T> {
    fn insert(&self, asset: AssetId, serving: T) {
        self.0
            .write()
            .expect("a registry's lock is never poisoned")
            .insert(asset, serving);
    }

    fn get(&self, asset: &AssetId) -> Option<T> {
        self.0
            .read()
            .expect("a registry's lock is never poisoned")
            .get(asset)
            .cloned()
    }
}

/// The events that register an upstream model: its asset (whose content must be the upstream
/// configuration's hash) and the access record that says where it forwards.
pub fn upstream_events(
    manifest: caravan_core::Manifest,
    upstream: Upstream,
) -> Result<Vec<Event>, GatewayError> {
    upstream
        .validate()
        .map_err(|message| GatewayError::BadParam {
            param: "upstream".into(),
            message,
        })?;
    if manifest.content != upstream.content_hash() {
        return Err(GatewayError::BadRequest(
            "an upstream model's content must be the keccak-256 of its upstream configuration"
                .into(),
        ));
    }
    let record = ServingRecord::UpstreamRegistered {
        asset: manifest.id(),
        upstream,
    };
    Ok(with_record(manifest, &record))
}

/// The events that register an embedding model: its asset (a model whose content is the
/// encoder configuration's hash) and the access record that says which encoder serves it.
pub fn encoder_events(
    manifest: Manifest,
    encoder: EncoderServing,
) -> Result<Vec<Event>, GatewayError> {
    if manifest.kind != AssetKind::Model {
        return Err(GatewayError::BadRequest(format!(
            "{} is a {}; an encoder serves a model asset",
            manifest.name,
            manifest.kind.name()
        )));
    }
    if manifest.content != encoder.content_hash() {
        return Err(GatewayError::BadRequest(
            "an embedding model's content must be the keccak-256 of its encoder configuration"
                .into(),
        ));
    }
    let record = ServingRecord::EncoderRegistered {
        asset: manifest.id(),
        encoder,
    };
    Ok(with_record(manifest, &record))
}

/// An asset's registration followed by the access record that says how it is served.
fn with_record(manifest: Manifest, record: &ServingRecord) -> Vec<Event> {
    vec![Event::AssetRegistered(manifest), access::event(record)]
}

/// The events that register an agent: its asset (an agent whose content is the program's hash
/// and whose `COMPOSED_OF` parents include every model the program calls) and the access record
/// that holds the program.
pub fn agent_events(
    manifest: Manifest,
    program: AgentProgram,
    lineage: &Lineage,
) -> Result<Vec<Event>, GatewayError> {
    let bad = |message: String| GatewayError::BadParam {
        param: "program".into(),
        message,
    };
    if manifest.kind != AssetKind::Agent {
        return Err(bad(format!(
            "{} is a {}; an agent program belongs to an agent asset",
            manifest.name,
            manifest.kind.name()
        )));
    }
    if manifest.content != program.content_hash() {
        return Err(bad(
            "an agent's content must be the keccak-256 of its program".into(),
        ));
    }
    for component in program.components() {
        let declared = manifest
            .parents
            .iter()
            .any(|edge| edge.parent == component && edge.kind == EdgeKind::ComposedOf);
        if !declared {
            return Err(bad(format!(
                "the program calls {component}, which the agent does not declare as a COMPOSED_OF parent; declare every model it calls so their lineages are paid"
            )));
        }
        if lineage.get(&component).map(|a| a.manifest.kind) != Some(AssetKind::Model) {
            return Err(bad(format!(
                "the program calls {component}, which is not a registered model"
            )));
        }
    }
    let record = ServingRecord::AgentRegistered {
        asset: manifest.id(),
        program,
    };
    Ok(with_record(manifest, &record))
}

impl Gateway {
    /// The upstream a model forwards to, if it is an upstream model.
    pub fn upstream(&self, asset: &AssetId) -> Option<Upstream> {
        self.upstreams.get(asset)
    }

    /// The encoder an embedding model runs, if the asset is one.
    pub fn encoder(&self, asset: &AssetId) -> Option<EncoderServing> {
        self.encoders.get(asset)
    }

    /// The program an agent runs, if the asset is an agent this node serves.
    pub fn agent(&self, asset: &AssetId) -> Option<AgentProgram> {
        self.agents.get(asset)
    }

    /// Registers an agent asset and its program in one durable write.
    pub fn register_agent(
        &self,
        manifest: caravan_core::Manifest,
        program: AgentProgram,
    ) -> Result<AssetId, GatewayError> {
        let asset = manifest.id();
        let events = self
            .journal()
            .read(|j| agent_events(manifest, program.clone(), j.economy().lineage()))?;
        self.register(events, ServingRecord::AgentRegistered { asset, program })?;
        Ok(asset)
    }

    /// Registers `manifest` (a model whose content is `upstream`'s hash) and the upstream it
    /// forwards to, in one durable write.
    pub fn register_upstream(
        &self,
        manifest: caravan_core::Manifest,
        upstream: Upstream,
    ) -> Result<AssetId, GatewayError> {
        let asset = manifest.id();
        let events = upstream_events(manifest, upstream.clone())?;
        self.register(
            events,
            ServingRecord::UpstreamRegistered { asset, upstream },
        )?;
        Ok(asset)
    }

    /// Registers `manifest` (a model whose content is `encoder`'s hash) as an embedding model
    /// served by this node's sentence encoder, in one durable write.
    pub fn register_encoder(
        &self,
        manifest: caravan_core::Manifest,
        encoder: EncoderServing,
    ) -> Result<AssetId, GatewayError> {
        let asset = manifest.id();
        let events = encoder_events(manifest, encoder.clone())?;
        self.register(events, ServingRecord::EncoderRegistered { asset, encoder })?;
        Ok(asset)
    }

    /// Writes an asset's registration `events` durably, then serves it as `record` says.
    fn register(&self, events: Vec<Event>, record: ServingRecord) -> Result<(), GatewayError> {
        let mut submitted = self.journal().submit(events)?;
        if let Some((_, why)) = submitted.refused.pop() {
            return Err(GatewayError::Refused(why.to_string()));
        }
        self.serve(&record);
        Ok(())
    }

    /// Serves an asset as `record` says (from the log, or just registered).
    pub(super) fn serve(&self, record: &ServingRecord) {
        match record {
            ServingRecord::UpstreamRegistered { asset, upstream } => {
                self.upstreams.insert(*asset, upstream.clone());
            }
            ServingRecord::AgentRegistered { asset, program } => {
                self.agents.insert(*asset, program.clone());
            }
            ServingRecord::EncoderRegistered { asset, encoder } => {
                self.encoders.insert(*asset, encoder.clone());
            }
        }
    }

    /// The id of the model (not agent or dataset) a name or id names, whatever its licence.
    pub fn resolve_any_model(&self, name: &str) -> Result<AssetId, GatewayError> {
        let found = self.named(name, |kind| kind == AssetKind::Model);
        match found.as_slice() {
            [asset] => Ok(asset.id),
            [] => Err(GatewayError::UnknownModel(name.to_owned())),
            _ => Err(GatewayError::BadParam {
                param: "model".into(),
                message: format!("several models are named {name}; name one by its asset id"),
            }),
        }
    }

    /// The endpoint that calls `model`: chat for upstreams and agents, embeddings for
    /// encoders, classifications for first-party classifiers.
    pub fn endpoint(&self, model: &ServedModel) -> &'static str {
        if self.encoder(&model.asset).is_some() {
            "/v1/embeddings"
        } else if self.upstream(&model.asset).is_some() || self.agent(&model.asset).is_some() {
            "/v1/chat/completions"
        } else {
            "/v1/classifications"
        }
    }

    /// The paid models this node can serve, in registration order.
    pub fn models(&self) -> Vec<ServedModel> {
        self.journal().read(|j| {
            j.economy()
                .lineage()
                .iter()
                .filter_map(served_model)
                .filter(|model| {
                    self.upstream(&model.asset).is_some()
                        || self.agent(&model.asset).is_some()
                        || self.encoder(&model.asset).is_some()
                        || self.artifacts_have(&model.content)
                })
                .collect()
        })
    }

    /// The catalogue people browse: every model and agent this node serves with the route that
    /// serves it, its parents in the lineage and its validators' attestations.
    pub fn catalogue(&self) -> Vec<CatalogueEntry> {
        let served = self.models();
        self.journal().read(|j| {
            let economy = j.economy();
            let lineage = economy.lineage();
            served
                .into_iter()
                .map(|model| CatalogueEntry {
                    endpoint: self.endpoint(&model),
                    metered: self.metered(&model.asset),
                    parents: lineage
                        .get(&model.asset)
                        .map(|asset| {
                            asset
                                .manifest
                                .parents
                                .iter()
                                .map(|edge| CatalogueParent {
                                    asset: edge.parent,
                                    name: lineage
                                        .get(&edge.parent)
                                        .map_or_else(String::new, |p| p.manifest.name.clone()),
                                    kind: edge.kind,
                                    share: edge.share,
                                })
                                .collect()
                        })
                        .unwrap_or_default(),
                    attestations: economy.attestations(&model.asset).to_vec(),
                    model,
                })
                .collect()
        })
    }

    /// What `asset` charges per million tokens besides its price per call.
    fn metered(&self, asset: &AssetId) -> Vec<(&'static str, caravan_core::Amount)> {
        if let Some(encoder) = self.encoder(asset) {
            return vec![("input tokens", encoder.input_per_million)];
        }
        if let Some(upstream) = self.upstream(asset) {
            return vec![
                ("prompt tokens", upstream.prompt_per_million),
                ("completion tokens", upstream.completion_per_million),
            ];
        }
        Vec::new()
    }

    fn artifacts_have(&self, content: &Hash32) -> bool {
        self.classifiers
            .lock()
            .expect("classifier cache lock")
            .contains_key(content)
            || self.artifacts.contains(content)
    }

    /// The assets of the kinds `keep` accepts that `name` names: the asset with that id (looked
    /// up directly), or every asset with that name.
    fn named(&self, name: &str, keep: impl Fn(AssetKind) -> bool) -> Vec<RegisteredAsset> {
        self.journal().read(|j| {
            let lineage = j.economy().lineage();
            match name.parse::<AssetId>() {
                Ok(id) => lineage
                    .get(&id)
                    .filter(|a| keep(a.manifest.kind))
                    .cloned()
                    .into_iter()
                    .collect(),
                Err(_) => lineage
                    .named(name)
                    .filter(|a| keep(a.manifest.kind))
                    .cloned()
                    .collect(),
            }
        })
    }

    /// The model a request names: an asset id, or a name (which must name one model).
    pub fn resolve(&self, name: &str) -> Result<ServedModel, GatewayError> {
        let found = self.named(name, |kind| kind != AssetKind::Dataset);
        match found.as_slice() {
            [] => Err(GatewayError::UnknownModel(name.to_owned())),
            [asset] => served_model(asset).ok_or_else(|| {
                GatewayError::NotServed(format!(
                    "model {name} is not licensed for paid calls (its licence is {}); the gateway serves commercially licensed models",
                    match asset.manifest.licence {
                        Licence::OpenUse => "open use",
                        _ => "non-commercial",
                    }
                ))
            }),
            several => Err(GatewayError::BadParam {
                param: "model".into(),
                message: format!(
                    "{} assets are named {name}; name one by its id: {}",
                    several.len(),
                    several
                        .iter()
                        .map(|asset| asset.id.to_string())
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            }),
        }
    }
}

/// A served model as the catalogue shows it.
#[derive(Clone, Debug)]
pub struct CatalogueEntry {
    pub model: ServedModel,
    /// The route that serves it (`/v1/chat/completions`, `/v1/embeddings`, `/v1/classifications`).
    pub endpoint: &'static str,
    /// What it charges per million tokens besides its price per call, by what is counted.
    pub metered: Vec<(&'static str, caravan_core::Amount)>,
    /// An agent also charges what each model it calls costs.
    pub parents: Vec<CatalogueParent>,
    pub attestations: Vec<caravan_core::attestation::Attestation>,
}

/// A parent of a served model: the edge its revenue flows up.
#[derive(Clone, Debug)]
pub struct CatalogueParent {
    pub asset: AssetId,
    pub name: String,
    pub kind: EdgeKind,
    pub share: caravan_core::Ppm,
}

fn served_model(asset: &RegisteredAsset) -> Option<ServedModel> {
    let manifest = &asset.manifest;
    let Licence::Commercial {
        token,
        price_per_call,
        ..
    } = manifest.licence
    else {
        return None;
    };
    (manifest.kind != AssetKind::Dataset).then(|| ServedModel {
        asset: asset.id,
        registered_ms: asset.registered_ms,
        name: manifest.name.clone(),
        kind: manifest.kind,
        content: manifest.content,
        token,
        price_per_call,
    })
}
