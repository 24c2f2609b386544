//! The lineage DAG: every registered asset in registration order. Parents must be registered
//! before their children and a parent list can never change, so registration order is a
//! topological order and a cycle cannot be written down.

use rustc_hash::FxHashMap;

use crate::asset::{AssetId, Licence, Manifest, ManifestError};

/// Why an asset cannot join the lineage.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LineageError {
    #[error(transparent)]
    Manifest(#[from] ManifestError),
    #[error(
        "asset {0} is already registered; an asset's manifest can never change — register a new version that names it as a parent"
    )]
    AlreadyRegistered(AssetId),
    #[error("parent {0} is not registered; register parents before their children")]
    UnknownParent(AssetId),
    #[error(
        "parent {parent} is a {parent_kind}, but a {edge} edge from a {child_kind} needs another kind of parent"
    )]
    EdgeKindMismatch {
        parent: AssetId,
        parent_kind: &'static str,
        child_kind: &'static str,
        edge: &'static str,
    },
    #[error(
        "parent {parent} asks every derivative for at least {required}; this manifest gives it {given}"
    )]
    BelowDerivativeRoyalty {
        parent: AssetId,
        required: String,
        given: String,
    },
    #[error(
        "parent {parent} is licensed for non-commercial use only, so its derivatives cannot carry a commercial licence"
    )]
    NonCommercialParent { parent: AssetId },
}

/// A registered asset: its manifest and where its parents sit in registration order.
#[derive(Debug, Clone)]
pub struct RegisteredAsset {
    pub id: AssetId,
    pub manifest: Manifest,
    pub parent_positions: Vec<u32>,
    /// When the event that registered it was recorded (milliseconds since the Unix epoch; 0
    /// for a lineage rebuilt from manifests alone, as a bundle's is).
    pub registered_ms: u64,
}

/// All registered assets, in registration (= topological) order.
#[derive(Debug, Clone, Default)]
pub struct Lineage {
    assets: Vec<RegisteredAsset>,
    positions: FxHashMap<AssetId, u32>,
    /// The positions of the assets with each name: a gateway resolves a model's name on every
    /// call, which must not cost a scan of every asset.
    by_name: FxHashMap<String, Vec<u32>>,
}

impl Lineage {
    /// Checks that `manifest` can be registered now and returns the id it would get.
    pub fn check(&self, manifest: &Manifest) -> Result<AssetId, LineageError> {
        manifest.validate()?;
        let id = manifest.id();
        if self.positions.contains_key(&id) {
            return Err(LineageError::AlreadyRegistered(id));
        }
        for edge in &manifest.parents {
            let parent = self
                .get(&edge.parent)
                .ok_or(LineageError::UnknownParent(edge.parent))?;
            let parent_kind = parent.manifest.kind;
            if !edge.kind.allows(manifest.kind, parent_kind) {
                return Err(LineageError::EdgeKindMismatch {
                    parent: edge.parent,
                    parent_kind: parent_kind.name(),
                    child_kind: manifest.kind.name(),
                    edge: edge.kind.name(),
                });
            }
            match &parent.manifest.licence {
                Licence::Commercial {
                    derivative_royalty, ..
                } if edge.share < *derivative_royalty => {
                    return Err(LineageError::BelowDerivativeRoyalty {
                        parent: edge.parent,
                        required: derivative_royalty.to_string(),
                        given: edge.share.to_string(),
                    });
                }
                Licence::NonCommercial
                    if matches!(manifest.licence, Licence::Commercial { .. }) =>
                {
                    return Err(LineageError::NonCommercialParent {
                        parent: edge.parent,
                    });
                }
                _ => {}
            }
        }
        Ok(id)
    }

    /// Registers `manifest` after [`Lineage::check`]; returns its id and position.
    pub fn register(&mut self, manifest: Manifest) -> Result<(AssetId, u32), LineageError> {
        self.register_at(manifest, 0)
    }

    /// [`Lineage::register`], remembering that it was registered at `registered_ms`.
    pub fn register_at(
        &mut self,
        manifest: Manifest,
        registered_ms: u64,
    ) -> Result<(AssetId, u32), LineageError> {
        let id = self.check(&manifest)?;
        let parent_positions = manifest
            .parents
            .iter()
            .map(|edge| self.positions[&edge.parent])
            .collect();
        let position = u32::try_from(self.assets.len()).expect("more than u32::MAX assets");
        self.assets.push(RegisteredAsset {
            id,
            manifest,
            parent_positions,
            registered_ms,
        });
        self.positions.insert(id, position);
        self.by_name
            .entry(self.assets[position as usize].manifest.name.clone())
            .or_default()
            .push(position);
        Ok((id, position))
    }

    /// Sets each asset's registration time, in registration order (as a snapshot keeps them).
    pub(crate) fn set_registration_times(&mut self, times: Vec<u64>) {
        for (asset, registered_ms) in self.assets.iter_mut().zip(times) {
            asset.registered_ms = registered_ms;
        }
    }

    pub fn get(&self, id: &AssetId) -> Option<&RegisteredAsset> {
        self.positions.get(id).map(|p| &self.assets[*p as usize])
    }

    pub fn position(&self, id: &AssetId) -> Option<u32> {
        self.positions.get(id).copied()
    }

    pub fn at(&self, position: u32) -> &RegisteredAsset {
        &self.assets[position as usize]
    }

    pub fn len(&self) -> usize {
        self.assets.len()
    }

    pub fn is_empty(&self) -> bool {
        self.assets.is_empty()
    }

    /// Assets in registration order: every parent comes before its children.
    pub fn iter(&self) -> impl Iterator<Item = &RegisteredAsset> {
        self.assets.iter()
    }

    /// The assets named `name`, in registration order (names need not be unique).
    pub fn named(&self, name: &str) -> impl Iterator<Item = &RegisteredAsset> {
        self.by_name
            .get(name)
            .into_iter()
            .flatten()
            .map(|position| &self.assets[*position as usize])
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::address::Address;
    use crate::asset::tests::dataset;
    use crate::asset::{AssetKind, EdgeKind, ParentEdge};
    use crate::hash::{Hash32, keccak256};
    use crate::money::Ppm;

    fn model(name: &str, parents: Vec<ParentEdge>, licence: Licence) -> Manifest {
        Manifest {
            kind: AssetKind::Model,
            name: name.into(),
            owner: Address::from_label(name),
            content: keccak256(name.as_bytes()),
            licence,
            parents,
            roles: vec![],
        }
    }

    #[test]
    fn parents_must_exist_match_their_edge_and_respect_their_licence() {
        let mut lineage = Lineage::default();
        let mut data = dataset("d", &[("a", 1)]);
        data.licence = Licence::Commercial {
            token: Address::ZERO,
            price_per_call: 5,
            derivative_royalty: Ppm::new(100_000).unwrap(),
        };
        let (data_id, _) = lineage.register(data.clone()).unwrap();
        assert_eq!(
            lineage.register(data),
            Err(LineageError::AlreadyRegistered(data_id))
        );

        let unknown = AssetId(Hash32([9; 32]));
        let edge = |parent, kind, share| ParentEdge {
            parent,
            kind,
            share: Ppm::new(share).unwrap(),
        };
        assert_eq!(
            lineage.check(&model(
                "m",
                vec![edge(unknown, EdgeKind::TrainedOn, 1)],
                Licence::OpenUse
            )),
            Err(LineageError::UnknownParent(unknown))
        );
        assert!(matches!(
            lineage.check(&model(
                "m",
                vec![edge(data_id, EdgeKind::TrainedOn, 50_000)],
                Licence::OpenUse
            )),
            Err(LineageError::BelowDerivativeRoyalty { .. })
        ));
        assert!(matches!(
            lineage.check(&model(
                "m",
                vec![edge(data_id, EdgeKind::FinetunedFrom, 100_000)],
                Licence::OpenUse
            )),
            Err(LineageError::EdgeKindMismatch { .. })
        ));
        let (model_id, position) = lineage
            .register(model(
                "m",
                vec![edge(data_id, EdgeKind::TrainedOn, 100_000)],
                Licence::NonCommercial,
            ))
            .unwrap();
        assert_eq!(position, 1);
        let commercial = Licence::Commercial {
            token: Address::ZERO,
            price_per_call: 1,
            derivative_royalty: Ppm::ZERO,
        };
        assert_eq!(
            lineage.check(&model(
                "f",
                vec![edge(model_id, EdgeKind::FinetunedFrom, 0)],
                commercial
            )),
            Err(LineageError::NonCommercialParent { parent: model_id })
        );
    }

    #[test]
    fn assets_are_found_by_name_in_registration_order() {
        let mut lineage = Lineage::default();
        let (first, _) = lineage
            .register(model("tagger", vec![], Licence::OpenUse))
            .unwrap();
        lineage
            .register(model("other", vec![], Licence::OpenUse))
            .unwrap();
        let mut second = model("tagger", vec![], Licence::OpenUse);
        second.owner = Address::from_label("another developer");
        let (second, _) = lineage.register(second.clone()).unwrap();
        // A refused registration is not found either.
        let mut refused = model("tagger", vec![], Licence::OpenUse);
        refused.parents = vec![ParentEdge {
            parent: AssetId(Hash32([7; 32])),
            kind: EdgeKind::TrainedOn,
            share: Ppm::new(1).unwrap(),
        }];
        assert!(lineage.register(refused).is_err());
        let found: Vec<AssetId> = lineage.named("tagger").map(|a| a.id).collect();
        assert_eq!(found, vec![first, second]);
        let scanned: Vec<AssetId> = lineage
            .iter()
            .filter(|a| a.manifest.name == "tagger")
            .map(|a| a.id)
            .collect();
        assert_eq!(found, scanned);
        assert_eq!(lineage.named("nobody").count(), 0);
    }
}
