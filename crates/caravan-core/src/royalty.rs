//! Royalty propagation: how an epoch's revenue flows up the lineage to the people behind it.
//!
//! Assets are processed children first (reverse registration order). Each asset's amount — its
//! own revenue, what its children sent it and what it carried from the last epoch — is split
//! once: each parent gets its edge share (and is processed later with it), and the rest goes to
//! the asset's roles by their shares and inside each role to its members by weight. Every split is
//! exact ([`split_largest_remainder`]). An amount smaller than the number of people it would be
//! split among is not split at all but carried to the next epoch, so rounding never decides who
//! among many small holders gets the only few units — it waits until there is enough for everyone.
//!
//! Cost: one pass over the assets that hold money, their edges and their members; independent of
//! how many calls produced the revenue.

use std::cmp::Reverse;
use std::collections::BTreeMap;

use rustc_hash::FxHashMap;
use serde::{Deserialize, Serialize};

use crate::address::Address;
use crate::asset::{AssetId, EdgeKind, Role};
use crate::lineage::Lineage;
use crate::money::{Amount, Ppm, split_largest_remainder};

/// The validators who attested each model (by lineage position), sorted, each once.
pub type Validators = BTreeMap<u32, Vec<Address>>;

/// The compute nodes that served an asset in one token, each with the revenue it served.
pub type ServedBy = BTreeMap<Address, Amount>;

/// Where one part of an asset's amount went.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "kind")]
pub enum PayoutTo {
    /// Sent up an edge to a parent, which splits it in turn.
    Parent { parent: AssetId, edge: EdgeKind },
    /// Paid to a member of one of the asset's roles.
    Member { account: Address, role: Role },
    /// A role that has no members (a model nobody has validated yet): its share goes to the owner.
    Owner {
        account: Address,
        role: Option<Role>,
    },
    /// Too small to split among the asset's recipients this epoch: kept for the next one.
    Carry,
}

#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Payout {
    pub asset: AssetId,
    pub token: Address,
    pub to: PayoutTo,
    #[serde(with = "crate::serde_u128")]
    pub amount: Amount,
}

/// Propagates `accruals` (asset position, token, amount) through `lineage`. `served` names the
/// compute nodes per (asset position, token). Returns every payout in processing order; the
/// amounts paid to members, owners and carry add up exactly to the sum of `accruals`.
pub fn propagate_royalties(
    lineage: &Lineage,
    accruals: &[(u32, Address, Amount)],
    served: &FxHashMap<(u32, Address), ServedBy>,
    validators: &Validators,
) -> Vec<Payout> {
    let mut pending: BTreeMap<(Reverse<u32>, Address), Amount> = BTreeMap::new();
    for (position, token, amount) in accruals {
        if *amount > 0 {
            *pending.entry((Reverse(*position), *token)).or_default() += amount;
        }
    }
    let no_nodes = ServedBy::new();
    let mut payouts = Vec::new();
    while let Some(((Reverse(position), token), total)) = pending.pop_first() {
        let asset = lineage.at(position);
        let manifest = &asset.manifest;
        let nodes = served.get(&(position, token)).unwrap_or(&no_nodes);
        let payout = |to, amount| Payout {
            asset: asset.id,
            token,
            to,
            amount,
        };

        let parent_share: u32 = manifest.parents.iter().map(|e| e.share.parts()).sum();
        let kept = Ppm::new(Ppm::ONE.parts() - parent_share)
            .expect("parent shares are validated to at most 100%");
        let attested = validators.get(&position);
        // A role's members with their weights, in canonical order: compute nodes by revenue
        // served; validators named in the manifest plus those who attested (weight 1 each);
        // everyone else as the manifest lists them.
        let role_members = |role_share: &crate::asset::RoleShare| -> Vec<(Address, u128)> {
            match role_share.role {
                Role::ComputeNode => nodes
                    .iter()
                    .map(|(node, amount)| (*node, *amount))
                    .collect(),
                role => {
                    let mut members: Vec<(Address, u128)> = role_share
                        .members
                        .iter()
                        .map(|m| (m.account, m.weight as u128))
                        .collect();
                    if role == Role::Validator {
                        for validator in attested.into_iter().flatten() {
                            if !members.iter().any(|(a, _)| a == validator) {
                                members.push((*validator, 1));
                            }
                        }
                        members.sort_unstable_by_key(|(a, _)| *a);
                    }
                    members
                }
            }
        };
        let mut recipients = manifest
            .parents
            .iter()
            .filter(|e| e.share > Ppm::ZERO)
            .count();
        if kept > Ppm::ZERO {
            recipients += if manifest.roles.is_empty() {
                1
            } else {
                manifest
                    .roles
                    .iter()
                    .filter(|r| r.share > Ppm::ZERO)
                    .map(|r| role_members(r).len().max(1))
                    .sum()
            };
        }
        if total < recipients as Amount {
            payouts.push(payout(PayoutTo::Carry, total));
            continue;
        }

        let mut edge_weights: Vec<u128> = manifest
            .parents
            .iter()
            .map(|e| e.share.parts() as u128)
            .collect();
        edge_weights.push(kept.parts() as u128);
        let parts = split_largest_remainder(total, &edge_weights);
        for ((edge, parent_position), part) in manifest
            .parents
            .iter()
            .zip(&asset.parent_positions)
            .zip(&parts)
        {
            if *part > 0 {
                *pending
                    .entry((Reverse(*parent_position), token))
                    .or_default() += part;
                payouts.push(payout(
                    PayoutTo::Parent {
                        parent: edge.parent,
                        edge: edge.kind,
                    },
                    *part,
                ));
            }
        }
        let kept_amount = *parts.last().expect("the kept part is always present");
        if kept_amount == 0 {
            continue;
        }
        if manifest.roles.is_empty() {
            payouts.push(payout(
                PayoutTo::Owner {
                    account: manifest.owner,
                    role: None,
                },
                kept_amount,
            ));
            continue;
        }
        let role_weights: Vec<u128> = manifest
            .roles
            .iter()
            .map(|r| r.share.parts() as u128)
            .collect();
        for (role_share, role_amount) in manifest
            .roles
            .iter()
            .zip(split_largest_remainder(kept_amount, &role_weights))
        {
            if role_amount == 0 {
                continue;
            }
            let members = role_members(role_share);
            if members.is_empty() {
                payouts.push(payout(
                    PayoutTo::Owner {
                        account: manifest.owner,
                        role: Some(role_share.role),
                    },
                    role_amount,
                ));
                continue;
            }
            let weights: Vec<u128> = members.iter().map(|(_, w)| *w).collect();
            for ((account, _), amount) in members
                .iter()
                .zip(split_largest_remainder(role_amount, &weights))
            {
                if amount > 0 {
                    payouts.push(payout(
                        PayoutTo::Member {
                            account: *account,
                            role: role_share.role,
                        },
                        amount,
                    ));
                }
            }
        }
    }
    payouts
}
