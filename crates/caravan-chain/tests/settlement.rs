//! An economy's epochs settled on the embedded chain: deploy once, fund, post after the
//! off-chain checks, activate after the delay, and claim with the proofs the epoch produced.

use caravan_chain::settlement::{DEV_TOKEN, SettleError, Settlement};
use caravan_core::*;

const DELAY: u64 = 600;
const T0: u64 = 1_900_000_000;

fn person(name: &str) -> Address {
    Address::from_label(name)
}

/// An economy paying in the development token, with a dataset of three labelers and a payer.
fn economy() -> (Economy, AssetId) {
    let token = Address(DEV_TOKEN.into_array());
    let mut economy = Economy::default();
    let setup = vec![
        Event::Genesis(Genesis {
            treasury: person("treasury"),
            protocol_fee: Ppm::ZERO,
        }),
        Event::TokenRegistered(Token {
            address: token,
            symbol: "USDC".into(),
            decimals: 6,
        }),
    ];
    for event in setup {
        economy.append(event, 0).unwrap();
    }
    let mut manifest = Manifest {
        kind: AssetKind::Dataset,
        name: "digits".into(),
        owner: person("requester"),
        content: keccak256(b"digits"),
        licence: Licence::Commercial {
            token,
            price_per_call: 1_000,
            derivative_royalty: Ppm::ZERO,
        },
        parents: vec![],
        roles: vec![RoleShare {
            role: Role::DataContributor,
            share: Ppm::ONE,
            members: ["ana", "ben", "cleo"]
                .iter()
                .enumerate()
                .map(|(i, n)| Member {
                    account: person(n),
                    weight: i as u64 + 1,
                })
                .collect(),
        }],
    };
    manifest.normalise();
    let id = manifest.id();
    economy.append(Event::AssetRegistered(manifest), 0).unwrap();
    economy
        .append(
            Event::Deposited {
                payer: person("app"),
                token,
                amount: 1_000_000,
            },
            0,
        )
        .unwrap();
    (economy, id)
}

fn spend(economy: &mut Economy, asset: AssetId, amount: u128) {
    let usage = Usage {
        asset,
        payer: person("app"),
        token: Address(DEV_TOKEN.into_array()),
        amount,
        calls: 1,
        node: person("node"),
    };
    economy.append(Event::UsageRecorded(usage), 0).unwrap();
}

fn close(economy: &mut Economy) -> (EpochOutcome, EpochBundle) {
    let (outcome, envelope, _) = economy.close_epoch(0).unwrap();
    let bundle = economy.epoch_bundle(&outcome, envelope.seq, envelope.hash, 0);
    (outcome, bundle)
}

#[test]
fn epochs_settle_and_everyone_claims_their_cumulative_share() {
    let dir = tempfile::tempdir().unwrap();
    let mut chain = Settlement::open_embedded(dir.path(), DELAY, T0).unwrap();
    assert_eq!(
        chain.deployment().token,
        DEV_TOKEN,
        "the development token's fixed address"
    );
    let (mut economy, dataset) = economy();
    spend(&mut economy, dataset, 6_000);
    let (outcome, bundle) = close(&mut economy);

    // Not funded yet: the root would promise money the distributor does not hold.
    match chain.post((&bundle).into(), None, T0) {
        Err(SettleError::Underfunded {
            promised: 6_000,
            funded: 0,
            ..
        }) => {}
        other => panic!("expected underfunded, got {other:?}"),
    }
    chain.fund(100_000, T0).unwrap();
    chain.post((&bundle).into(), None, T0).unwrap();
    assert!(chain.activate(T0 + 1).is_err(), "the delay is not over");
    chain.activate(T0 + DELAY).unwrap();
    assert_eq!(chain.active_root().unwrap(), bundle.root);

    for (i, leaf) in outcome.leaves.iter().enumerate() {
        let proof = outcome.tree.proof(i);
        chain.claim(leaf, &proof, bundle.root, T0 + DELAY).unwrap();
        assert_eq!(chain.balance(leaf.account).unwrap(), leaf.cumulative);
        assert_eq!(
            chain.claimed(leaf.account, leaf.token).unwrap(),
            leaf.cumulative
        );
    }
    let paid: u128 = ["ana", "ben", "cleo"]
        .iter()
        .map(|n| chain.balance(person(n)).unwrap())
        .sum();
    assert_eq!(
        paid, 6_000,
        "every base unit of the epoch reached its owner"
    );

    // Reopened from the directory, the chain remembers its contracts and the claims.
    drop(chain);
    let mut chain = Settlement::open_embedded(dir.path(), DELAY, T0 + DELAY).unwrap();
    assert_eq!(chain.balance(person("cleo")).unwrap(), 3_000);

    // A second epoch: only the difference is paid.
    spend(&mut economy, dataset, 600);
    let (outcome2, bundle2) = close(&mut economy);
    chain
        .post((&bundle2).into(), Some((&bundle).into()), T0 + DELAY)
        .unwrap();
    chain.activate(T0 + 2 * DELAY).unwrap();
    let cleo = outcome2
        .leaves
        .iter()
        .position(|l| l.account == person("cleo"))
        .unwrap();
    chain
        .claim(
            &outcome2.leaves[cleo],
            &outcome2.tree.proof(cleo),
            bundle2.root,
            T0 + 2 * DELAY,
        )
        .unwrap();
    assert_eq!(chain.balance(person("cleo")).unwrap(), 3_300);

    // A bundle that would lower someone's cumulative amount is refused before posting.
    let mut lowered = bundle2.clone();
    lowered.epoch = 3;
    lowered.leaves[cleo].cumulative -= 1;
    match chain.post((&lowered).into(), Some((&bundle2).into()), T0 + 3 * DELAY) {
        Err(SettleError::Lowered {
            before: 3_300,
            after: 3_299,
            ..
        }) => {}
        other => panic!("expected a lowered entitlement, got {other:?}"),
    }
}

#[test]
fn the_lineage_is_anchored_parents_first_and_only_once() {
    let dir = tempfile::tempdir().unwrap();
    let mut chain = Settlement::open_embedded(dir.path(), DELAY, T0).unwrap();
    let (_, dataset) = economy();
    let model = AssetId(keccak256(b"a model"));
    let licence = keccak256(b"licence");
    match chain.anchor_asset(model, person("lab"), &[dataset], licence, T0) {
        Err(SettleError::Transaction { why, .. }) => {
            assert!(why.contains("UnknownParent"), "{why}")
        }
        other => panic!("a child before its parent must be refused, got {other:?}"),
    }
    assert!(
        chain
            .anchor_asset(dataset, person("requester"), &[], licence, T0)
            .unwrap()
    );
    assert!(
        chain
            .anchor_asset(model, person("lab"), &[dataset], licence, T0)
            .unwrap()
    );
    assert!(
        !chain
            .anchor_asset(dataset, person("requester"), &[], licence, T0)
            .unwrap(),
        "already there"
    );
}
