//! The gateway's access records: API keys issued and revoked, upstream models and agents
//! registered. Each is an `AccessRecorded` event holding this JSON, so who may spend a balance and
//! where a model forwards are as durable and tamper-evident as the charges themselves; the
//! gateway rebuilds its tables from them when it opens.

use caravan_core::lineage::Lineage;
use caravan_core::{AssetId, AssetKind, EdgeKind, Event, Hash32, Lane, Manifest};
use caravan_store::Journal;
use serde::{Deserialize, Serialize};

use super::GatewayError;
use super::agent::AgentProgram;
use super::embeddings::EncoderServing;
use super::keys::ApiKey;
use super::upstream::Upstream;

/// The gateway's access records, as stored in `AccessRecorded` events.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "type")]
pub enum AccessRecord {
    KeyIssued {
        hash: Hash32,
        key: ApiKey,
        /// The digest of the payer's signed request that issued it (none for keys the operator
        /// issued in-process), so that signed request cannot issue another.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        authorization: Option<Hash32>,
    },
    KeyRevoked {
        hash: Hash32,
        at_ms: u64,
    },
    /// A model asset served by forwarding to an upstream server; the asset's content hash is
    /// the upstream configuration's.
    UpstreamRegistered {
        asset: AssetId,
        upstream: Upstream,
    },
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

/// Every access record in `journal`'s log, in the order recorded (reads the access records'
/// lane of the log, not the whole of it).
pub fn recorded(journal: &Journal) -> Result<Vec<AccessRecord>, GatewayError> {
    let mut records = Vec::new();
    journal.for_each_in_lane(Lane::Access, 0, |row| -> Result<(), GatewayError> {
        if let Ok(Event::AccessRecorded { record }) = Event::decode(&row.body) {
            records.push(serde_json::from_str(&record).map_err(|e| {
                GatewayError::Refused(format!(
                    "stored access record {} cannot be read: {e}",
                    row.seq
                ))
            })?);
        }
        Ok(())
    })?;
    Ok(records)
}

/// The embedding models registered in `journal`'s log, in registration order, each with the
/// encoder configuration that serves it.
pub fn encoder_models(journal: &Journal) -> Result<Vec<(AssetId, EncoderServing)>, GatewayError> {
    Ok(recorded(journal)?
        .into_iter()
        .filter_map(|record| match record {
            AccessRecord::EncoderRegistered { asset, encoder } => Some((asset, encoder)),
            _ => None,
        })
        .collect())
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
    let record = AccessRecord::UpstreamRegistered {
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
    let record = AccessRecord::EncoderRegistered {
        asset: manifest.id(),
        encoder,
    };
    Ok(with_record(manifest, &record))
}

/// An asset's registration followed by the access record that says how it is served.
fn with_record(manifest: Manifest, record: &AccessRecord) -> Vec<Event> {
    vec![
        Event::AssetRegistered(manifest),
        Event::AccessRecorded {
            record: serde_json::to_string(record).expect("access records serialise"),
        },
    ]
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
    let record = AccessRecord::AgentRegistered {
        asset: manifest.id(),
        program,
    };
    Ok(with_record(manifest, &record))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gateway::keys::{Scope, key_id, new_secret};
    use caravan_core::Address;

    #[test]
    fn keys_are_random_and_stored_only_as_hashes() {
        let (a, hash_a) = new_secret();
        let (b, _) = new_secret();
        assert_ne!(a, b);
        assert!(a.starts_with("crv_") && a.len() == 68);
        let record = AccessRecord::KeyIssued {
            hash: hash_a,
            key: ApiKey {
                id: key_id(&hash_a),
                payer: Address::from_label("shop"),
                scopes: Scope::ALL.to_vec(),
                expires_ms: None,
                name: String::new(),
                created_ms: 0,
            },
            authorization: None,
        };
        let stored = serde_json::to_string(&record).unwrap();
        assert!(!stored.contains(&a[4..]), "{stored}");
    }
}
