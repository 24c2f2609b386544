//! Assets — datasets, models and agents — described by an immutable manifest whose keccak-256 is
//! the asset's id. The manifest names the asset's parents with the royalty share each one gets,
//! its licence, and who is paid from what remains (beneficiaries by role).

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::address::Address;
use crate::codec::{DecodeError, Decoder, Encoder};
use crate::hash::{Hash32, keccak256_parts};
use crate::money::{Amount, Ppm};

/// The most parents one asset may name. A bound keeps propagation cost and manifests small.
pub const MAX_PARENTS: usize = 16;
/// The most members one role may list (a dataset's contributors).
pub const MAX_ROLE_MEMBERS: usize = 1_000_000;
/// The longest asset name, in bytes.
pub const MAX_NAME_LEN: usize = 120;

const ASSET_ID_DOMAIN: &[u8] = b"caravan/asset/v1";

/// The content-addressed id of an asset: keccak-256 of its canonical manifest.
#[derive(Copy, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct AssetId(pub Hash32);

impl fmt::Display for AssetId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}
impl fmt::Debug for AssetId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}
impl FromStr for AssetId {
    type Err = String;
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        text.parse::<Hash32>()
            .map(AssetId)
            .map_err(|why| format!("not an asset id ({why}); asset ids are 0x and 64 hex digits"))
    }
}

#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AssetKind {
    Dataset,
    Model,
    Agent,
}

impl AssetKind {
    pub const ALL: [AssetKind; 3] = [AssetKind::Dataset, AssetKind::Model, AssetKind::Agent];
    fn tag(self) -> u8 {
        self as u8
    }
    pub fn name(self) -> &'static str {
        match self {
            AssetKind::Dataset => "dataset",
            AssetKind::Model => "model",
            AssetKind::Agent => "agent",
        }
    }
}

/// The terms an asset is published under. Fixed forever with the manifest.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "type")]
pub enum Licence {
    /// Anyone may use and derive from it, paid or not, with no royalty required.
    OpenUse,
    /// Free for non-commercial use; no paid calls and no commercially licensed derivatives.
    NonCommercial,
    /// Paid per call in `token`; any derivative must give it at least `derivative_royalty`.
    Commercial {
        token: Address,
        #[serde(with = "crate::serde_u128")]
        price_per_call: Amount,
        derivative_royalty: Ppm,
    },
}

/// How a child relates to a parent; the kind fixes which asset kinds may be on each side.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum EdgeKind {
    /// A model trained on a dataset.
    TrainedOn,
    /// A model fine-tuned from another model.
    FinetunedFrom,
    /// An agent that calls a model or another agent.
    ComposedOf,
    /// An asset derived from another of the same kind (a cleaned dataset, a distilled model).
    DerivedFrom,
}

impl EdgeKind {
    pub const ALL: [EdgeKind; 4] = [
        EdgeKind::TrainedOn,
        EdgeKind::FinetunedFrom,
        EdgeKind::ComposedOf,
        EdgeKind::DerivedFrom,
    ];

    /// Whether an edge of this kind may go from a `child` to a `parent` of the given kinds.
    pub fn allows(self, child: AssetKind, parent: AssetKind) -> bool {
        use AssetKind::*;
        match self {
            EdgeKind::TrainedOn => child == Model && parent == Dataset,
            EdgeKind::FinetunedFrom => child == Model && parent == Model,
            EdgeKind::ComposedOf => child == Agent && matches!(parent, Model | Agent),
            EdgeKind::DerivedFrom => child == parent,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            EdgeKind::TrainedOn => "TRAINED_ON",
            EdgeKind::FinetunedFrom => "FINETUNED_FROM",
            EdgeKind::ComposedOf => "COMPOSED_OF",
            EdgeKind::DerivedFrom => "DERIVED_FROM",
        }
    }
}

/// A parent of an asset and the share of the asset's revenue that flows to it.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct ParentEdge {
    pub parent: AssetId,
    pub kind: EdgeKind,
    pub share: Ppm,
}

/// Who is paid from the part of an asset's revenue that stays with the asset.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    Developer,
    FineTuner,
    Validator,
    /// The nodes that served the asset's calls, weighted by the revenue each one served.
    /// Members come from usage records, never from the manifest.
    ComputeNode,
    /// The people whose accepted work a dataset contains, weighted per contributor.
    DataContributor,
}

impl Role {
    pub const ALL: [Role; 5] = [
        Role::Developer,
        Role::FineTuner,
        Role::Validator,
        Role::ComputeNode,
        Role::DataContributor,
    ];
    pub fn name(self) -> &'static str {
        match self {
            Role::Developer => "developer",
            Role::FineTuner => "fine-tuner",
            Role::Validator => "validator",
            Role::ComputeNode => "compute node",
            Role::DataContributor => "data contributor",
        }
    }
    fn allowed_on(self, kind: AssetKind) -> bool {
        match self {
            Role::DataContributor => kind == AssetKind::Dataset,
            Role::FineTuner => kind == AssetKind::Model,
            _ => true,
        }
    }
}

/// One beneficiary inside a role and its weight relative to the role's other members.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Member {
    pub account: Address,
    pub weight: u64,
}

/// A role's share of what stays with the asset, and its members. Members are sorted by account
/// (the canonical order the id and the rounding tie-break rely on).
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct RoleShare {
    pub role: Role,
    pub share: Ppm,
    #[serde(default)]
    pub members: Vec<Member>,
}

/// Everything that defines an asset. Its hash is the asset's id, so nothing in it can change.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Manifest {
    pub kind: AssetKind,
    pub name: String,
    /// Registers the asset and receives any role share that has no members.
    pub owner: Address,
    /// Hash of the asset's content: a dataset's item root, a model's weights, an agent's program.
    pub content: Hash32,
    pub licence: Licence,
    #[serde(default)]
    pub parents: Vec<ParentEdge>,
    /// Role shares sum to exactly 100% of what stays with the asset; empty means all to the owner.
    #[serde(default)]
    pub roles: Vec<RoleShare>,
}

/// Why a manifest cannot be registered. Each message names the field and the fix.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ManifestError {
    #[error("asset name must be 1 to {MAX_NAME_LEN} bytes, got {0}")]
    BadName(usize),
    #[error(
        "{count} parents is more than the limit of {MAX_PARENTS}; register an intermediate asset that groups them"
    )]
    TooManyParents { count: usize },
    #[error("parent {0} is listed twice; list each parent once with its total share")]
    DuplicateParent(AssetId),
    #[error(
        "parent shares add up to {total} ppm, more than 100% (1000000 ppm): the royalty stack cannot exceed the revenue"
    )]
    RoyaltyStackOver100 { total: u64 },
    #[error("a {child} cannot have a {edge} parent edge; {edge} goes from {expected}")]
    EdgeNotAllowedForChild {
        child: &'static str,
        edge: &'static str,
        expected: &'static str,
    },
    #[error("role {0} is listed twice; give each role once")]
    DuplicateRole(&'static str),
    #[error("role {role} is not available on a {kind}")]
    RoleNotAllowed {
        role: &'static str,
        kind: &'static str,
    },
    #[error(
        "role shares add up to {total} ppm; they must add up to exactly 1000000 ppm (100%) of what stays with the asset"
    )]
    RoleSharesNotWhole { total: u64 },
    #[error(
        "compute node members come from usage records; leave the compute node role's member list empty"
    )]
    ComputeNodeMembersGiven,
    #[error(
        "role {role}: members must be sorted by account with no repeats; {account} is out of order or repeated"
    )]
    MembersNotSorted {
        role: &'static str,
        account: Address,
    },
    #[error("role {role}: member {account} has weight 0; leave them out instead")]
    ZeroWeight {
        role: &'static str,
        account: Address,
    },
    #[error("role {role}: {count} members is more than the limit of {MAX_ROLE_MEMBERS}")]
    TooManyMembers { role: &'static str, count: usize },
    #[error("a commercial licence needs a price per call above zero")]
    ZeroPrice,
}

impl Manifest {
    /// The asset id this manifest defines.
    pub fn id(&self) -> AssetId {
        AssetId(keccak256_parts(&[ASSET_ID_DOMAIN, &self.encode()]))
    }

    /// The checks that need nothing but the manifest itself (parents are checked by the lineage).
    pub fn validate(&self) -> Result<(), ManifestError> {
        if self.name.is_empty() || self.name.len() > MAX_NAME_LEN {
            return Err(ManifestError::BadName(self.name.len()));
        }
        if let Licence::Commercial {
            price_per_call: 0, ..
        } = self.licence
        {
            return Err(ManifestError::ZeroPrice);
        }
        if self.parents.len() > MAX_PARENTS {
            return Err(ManifestError::TooManyParents {
                count: self.parents.len(),
            });
        }
        let mut stack = 0u64;
        for (i, edge) in self.parents.iter().enumerate() {
            if self.parents[..i].iter().any(|e| e.parent == edge.parent) {
                return Err(ManifestError::DuplicateParent(edge.parent));
            }
            if !AssetKind::ALL
                .iter()
                .any(|parent| edge.kind.allows(self.kind, *parent))
            {
                return Err(ManifestError::EdgeNotAllowedForChild {
                    child: self.kind.name(),
                    edge: edge.kind.name(),
                    expected: edge_direction(edge.kind),
                });
            }
            stack += edge.share.parts() as u64;
        }
        if stack > Ppm::ONE.parts() as u64 {
            return Err(ManifestError::RoyaltyStackOver100 { total: stack });
        }
        let mut role_total = 0u64;
        for (i, role_share) in self.roles.iter().enumerate() {
            let role = role_share.role;
            if self.roles[..i].iter().any(|r| r.role == role) {
                return Err(ManifestError::DuplicateRole(role.name()));
            }
            if !role.allowed_on(self.kind) {
                return Err(ManifestError::RoleNotAllowed {
                    role: role.name(),
                    kind: self.kind.name(),
                });
            }
            if role == Role::ComputeNode && !role_share.members.is_empty() {
                return Err(ManifestError::ComputeNodeMembersGiven);
            }
            if role_share.members.len() > MAX_ROLE_MEMBERS {
                return Err(ManifestError::TooManyMembers {
                    role: role.name(),
                    count: role_share.members.len(),
                });
            }
            for (j, member) in role_share.members.iter().enumerate() {
                if member.weight == 0 {
                    return Err(ManifestError::ZeroWeight {
                        role: role.name(),
                        account: member.account,
                    });
                }
                if j > 0 && role_share.members[j - 1].account >= member.account {
                    return Err(ManifestError::MembersNotSorted {
                        role: role.name(),
                        account: member.account,
                    });
                }
            }
            role_total += role_share.share.parts() as u64;
        }
        if !self.roles.is_empty() && role_total != Ppm::ONE.parts() as u64 {
            return Err(ManifestError::RoleSharesNotWhole { total: role_total });
        }
        Ok(())
    }

    /// Sorts every role's members by account, merging repeats by adding their weights: the
    /// canonical form to build manifests in before registering them.
    pub fn normalise(&mut self) {
        for role in &mut self.roles {
            role.members.sort_by_key(|m| m.account);
            role.members.dedup_by(|later, earlier| {
                if later.account == earlier.account {
                    earlier.weight += later.weight;
                    true
                } else {
                    false
                }
            });
        }
    }

    pub fn encode(&self) -> Vec<u8> {
        let mut e = Encoder::default();
        self.encode_into(&mut e);
        e.bytes
    }

    pub fn encode_into(&self, e: &mut Encoder) {
        e.u8(self.kind.tag())
            .str(&self.name)
            .address(&self.owner)
            .hash(&self.content);
        match &self.licence {
            Licence::OpenUse => {
                e.u8(0);
            }
            Licence::NonCommercial => {
                e.u8(1);
            }
            Licence::Commercial {
                token,
                price_per_call,
                derivative_royalty,
            } => {
                e.u8(2)
                    .address(token)
                    .u128(*price_per_call)
                    .u32(derivative_royalty.parts());
            }
        }
        e.len(self.parents.len());
        for edge in &self.parents {
            e.hash(&edge.parent.0)
                .u8(edge.kind as u8)
                .u32(edge.share.parts());
        }
        e.len(self.roles.len());
        for role in &self.roles {
            e.u8(role.role as u8)
                .u32(role.share.parts())
                .len(role.members.len());
            for member in &role.members {
                e.address(&member.account).u64(member.weight);
            }
        }
    }

    pub fn decode_from(d: &mut Decoder<'_>) -> Result<Manifest, DecodeError> {
        let kind = *AssetKind::ALL
            .get(d.u8()? as usize)
            .ok_or_else(|| d.error("unknown asset kind"))?;
        let name = d.str()?;
        let owner = d.address()?;
        let content = d.hash()?;
        let licence = match d.u8()? {
            0 => Licence::OpenUse,
            1 => Licence::NonCommercial,
            2 => Licence::Commercial {
                token: d.address()?,
                price_per_call: d.u128()?,
                derivative_royalty: ppm(d)?,
            },
            _ => return Err(d.error("unknown licence")),
        };
        let mut parents = Vec::new();
        for _ in 0..d.len(37)? {
            let parent = AssetId(d.hash()?);
            let kind = *EdgeKind::ALL
                .get(d.u8()? as usize)
                .ok_or_else(|| d.error("unknown edge kind"))?;
            parents.push(ParentEdge {
                parent,
                kind,
                share: ppm(d)?,
            });
        }
        let mut roles = Vec::new();
        for _ in 0..d.len(9)? {
            let role = *Role::ALL
                .get(d.u8()? as usize)
                .ok_or_else(|| d.error("unknown role"))?;
            let share = ppm(d)?;
            let mut members = Vec::new();
            for _ in 0..d.len(28)? {
                members.push(Member {
                    account: d.address()?,
                    weight: d.u64()?,
                });
            }
            roles.push(RoleShare {
                role,
                share,
                members,
            });
        }
        Ok(Manifest {
            kind,
            name,
            owner,
            content,
            licence,
            parents,
            roles,
        })
    }
}

fn ppm(d: &mut Decoder<'_>) -> Result<Ppm, DecodeError> {
    let raw = d.u32()?;
    Ppm::new(raw).map_err(|why| d.error(why))
}

fn edge_direction(kind: EdgeKind) -> &'static str {
    match kind {
        EdgeKind::TrainedOn => "a model to a dataset",
        EdgeKind::FinetunedFrom => "a model to a model",
        EdgeKind::ComposedOf => "an agent to a model or agent",
        EdgeKind::DerivedFrom => "an asset to one of its own kind",
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::hash::keccak256;

    pub fn dataset(name: &str, contributors: &[(&str, u64)]) -> Manifest {
        let mut manifest = Manifest {
            kind: AssetKind::Dataset,
            name: name.into(),
            owner: Address::from_label(&format!("owner of {name}")),
            content: keccak256(name.as_bytes()),
            licence: Licence::OpenUse,
            parents: vec![],
            roles: vec![
                RoleShare {
                    role: Role::Developer,
                    share: Ppm::new(200_000).unwrap(),
                    members: vec![],
                },
                RoleShare {
                    role: Role::DataContributor,
                    share: Ppm::new(800_000).unwrap(),
                    members: contributors
                        .iter()
                        .map(|(label, weight)| Member {
                            account: Address::from_label(label),
                            weight: *weight,
                        })
                        .collect(),
                },
            ],
        };
        manifest.normalise();
        manifest
    }

    #[test]
    fn the_id_is_the_hash_of_the_encoding_and_the_encoding_round_trips() {
        let manifest = dataset("digits", &[("alice", 3), ("bob", 1)]);
        let bytes = manifest.encode();
        let mut d = Decoder::new(&bytes);
        assert_eq!(Manifest::decode_from(&mut d).unwrap(), manifest);
        d.finish().unwrap();
        let mut renamed = manifest.clone();
        renamed.name = "digits v2".into();
        assert_ne!(renamed.id(), manifest.id());
    }

    #[test]
    fn each_manifest_error_is_reported() {
        let base = dataset("d", &[("a", 1)]);
        let mut m = base.clone();
        m.name = String::new();
        assert_eq!(m.validate(), Err(ManifestError::BadName(0)));

        let mut m = base.clone();
        m.roles[0].share = Ppm::new(300_000).unwrap();
        assert_eq!(
            m.validate(),
            Err(ManifestError::RoleSharesNotWhole { total: 1_100_000 })
        );

        let mut m = base.clone();
        m.roles[1].members = vec![
            Member {
                account: Address::from_label("z"),
                weight: 1,
            },
            Member {
                account: Address::ZERO,
                weight: 1,
            },
        ];
        assert!(matches!(
            m.validate(),
            Err(ManifestError::MembersNotSorted { .. })
        ));

        let mut m = base.clone();
        m.roles[1].members[0].weight = 0;
        assert!(matches!(
            m.validate(),
            Err(ManifestError::ZeroWeight { .. })
        ));

        let mut m = base.clone();
        m.roles.push(RoleShare {
            role: Role::Developer,
            share: Ppm::ZERO,
            members: vec![],
        });
        assert_eq!(m.validate(), Err(ManifestError::DuplicateRole("developer")));

        let mut m = base.clone();
        m.roles[0].role = Role::FineTuner;
        assert!(matches!(
            m.validate(),
            Err(ManifestError::RoleNotAllowed { .. })
        ));

        let mut m = base.clone();
        m.roles[0] = RoleShare {
            role: Role::ComputeNode,
            share: Ppm::new(200_000).unwrap(),
            members: vec![Member {
                account: Address::ZERO,
                weight: 1,
            }],
        };
        assert_eq!(m.validate(), Err(ManifestError::ComputeNodeMembersGiven));

        let mut m = base.clone();
        m.parents = vec![ParentEdge {
            parent: AssetId(Hash32::ZERO),
            kind: EdgeKind::TrainedOn,
            share: Ppm::new(1).unwrap(),
        }];
        assert!(matches!(
            m.validate(),
            Err(ManifestError::EdgeNotAllowedForChild { .. })
        ));

        let mut m = base.clone();
        let edge = |n: u8, share: u32| ParentEdge {
            parent: AssetId(Hash32([n; 32])),
            kind: EdgeKind::DerivedFrom,
            share: Ppm::new(share).unwrap(),
        };
        m.parents = vec![edge(1, 600_000), edge(2, 500_000)];
        assert_eq!(
            m.validate(),
            Err(ManifestError::RoyaltyStackOver100 { total: 1_100_000 })
        );
        m.parents = vec![edge(1, 1), edge(1, 1)];
        assert!(matches!(
            m.validate(),
            Err(ManifestError::DuplicateParent(_))
        ));
        m.parents = (0..=MAX_PARENTS as u8).map(|n| edge(n, 1)).collect();
        assert!(matches!(
            m.validate(),
            Err(ManifestError::TooManyParents { .. })
        ));

        let mut m = base;
        m.licence = Licence::Commercial {
            token: Address::ZERO,
            price_per_call: 0,
            derivative_royalty: Ppm::ZERO,
        };
        assert_eq!(m.validate(), Err(ManifestError::ZeroPrice));
    }

    #[test]
    fn normalise_sorts_and_merges_members() {
        let m = dataset("d", &[("b", 1), ("a", 2), ("b", 4)]);
        assert_eq!(m.roles[1].members.len(), 2);
        assert_eq!(m.roles[1].members.iter().map(|x| x.weight).sum::<u64>(), 7);
        m.validate().unwrap();
    }
}
