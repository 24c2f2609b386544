//! The terms a model is registered with: how what stays with it (after its parents' shares) is
//! split between its owner, its validators and the nodes that serve it, and what derivatives
//! of it owe it — with the defaults every registration starts from, wherever it is made (the
//! command line, the API, the demo).

use std::fmt;

use crate::address::Address;
use crate::asset::{Licence, Member, Role, RoleShare};
use crate::money::{Amount, Ppm};

/// How a model's revenue is shared out beyond its parents.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ModelShares {
    /// What each derivative (a fine-tune, an agent composing it) must give this model at least.
    pub derivative_royalty: Ppm,
    /// The validators' part of what stays with the model (shared by those who attested it).
    pub validator: Ppm,
    /// The serving nodes' part, split by the revenue each served.
    pub compute: Ppm,
}

/// The validators' and the nodes' parts together leave nothing, or less, for the owner.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[error(
    "the validators' {validator} and the serving nodes' {compute} add up to more than 100% of what stays with the model; lower one of them"
)]
pub struct SharesTooLarge {
    pub validator: Ppm,
    pub compute: Ppm,
}

impl Default for ModelShares {
    /// 10% from derivatives; of what stays, 10% to validators and 20% to serving nodes, the
    /// rest to the owner.
    fn default() -> ModelShares {
        ModelShares {
            derivative_royalty: Ppm::new(100_000).expect("10%"),
            validator: Ppm::new(100_000).expect("10%"),
            compute: Ppm::new(200_000).expect("20%"),
        }
    }
}

impl ModelShares {
    /// The model's roles: `role` (its owner's: developer, or fine-tuner for a fine-tune) keeps
    /// what validators and serving nodes do not take. Roles with no share are left out.
    pub fn roles(&self, role: Role, owner: Address) -> Result<Vec<RoleShare>, SharesTooLarge> {
        let too_large = SharesTooLarge {
            validator: self.validator,
            compute: self.compute,
        };
        let kept = Ppm::ONE
            .parts()
            .checked_sub(self.validator.parts() + self.compute.parts())
            .ok_or(too_large)?;
        let mut roles = vec![
            RoleShare {
                role,
                share: Ppm::new(kept).map_err(|_| too_large)?,
                members: vec![Member {
                    account: owner,
                    weight: 1,
                }],
            },
            RoleShare {
                role: Role::Validator,
                share: self.validator,
                members: Vec::new(),
            },
            RoleShare {
                role: Role::ComputeNode,
                share: self.compute,
                members: Vec::new(),
            },
        ];
        roles.retain(|r| r.share != Ppm::ZERO);
        Ok(roles)
    }

    /// A commercial licence at `price_per_call` of `token`, owed this model's derivative
    /// royalty by its derivatives.
    pub fn licence(&self, token: Address, price_per_call: Amount) -> Licence {
        Licence::Commercial {
            token,
            price_per_call,
            derivative_royalty: self.derivative_royalty,
        }
    }
}

impl fmt::Display for ModelShares {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} from derivatives; {} to validators and {} to serving nodes",
            self.derivative_royalty, self.validator, self.compute
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_owner_keeps_what_validators_and_nodes_do_not_take() {
        let owner = Address::from_label("developer");
        let roles = ModelShares::default()
            .roles(Role::Developer, owner)
            .unwrap();
        let shares: Vec<(Role, u32)> = roles.iter().map(|r| (r.role, r.share.parts())).collect();
        assert_eq!(
            shares,
            vec![
                (Role::Developer, 700_000),
                (Role::Validator, 100_000),
                (Role::ComputeNode, 200_000)
            ]
        );
        assert_eq!(roles[0].members[0].account, owner);
        let no_validators = ModelShares {
            validator: Ppm::ZERO,
            ..ModelShares::default()
        };
        assert_eq!(
            no_validators.roles(Role::FineTuner, owner).unwrap().len(),
            2
        );
        let greedy = ModelShares {
            validator: Ppm::new(600_000).unwrap(),
            compute: Ppm::new(500_000).unwrap(),
            ..ModelShares::default()
        };
        let error = greedy.roles(Role::Developer, owner).unwrap_err();
        assert!(
            error.to_string().contains("add up to more than 100%"),
            "{error}"
        );
    }
}
