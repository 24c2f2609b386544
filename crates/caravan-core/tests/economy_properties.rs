//! Invariants of the whole economy over random lineages, shares and revenues: value is conserved
//! to the last base unit, event order within an epoch does not matter, replay reproduces the
//! state, and the epoch bundle re-checks.

use caravan_core::epoch::EpochBundle;
use caravan_core::*;
use proptest::prelude::*;
use proptest::test_runner::{Config, RngSeed, TestRunner};

const TOKEN: &str = "token";

fn token() -> Address {
    Address::from_label(TOKEN)
}

/// A random but valid world: assets in registration order and usage records.
#[derive(Clone, Debug)]
struct World {
    manifests: Vec<Manifest>,
    usages: Vec<Usage>,
    fee: u32,
}

fn ppm(parts: u32) -> Ppm {
    Ppm::new(parts).unwrap()
}

fn build_world(seed: &[u32], asset_count: usize, usage_amounts: &[u64], fee: u32) -> World {
    let mut manifests: Vec<Manifest> = Vec::new();
    let mut pick = seed.iter().cycle().copied();
    for i in 0..asset_count {
        let kind = if i < 2 {
            AssetKind::Dataset
        } else {
            AssetKind::ALL[(pick.next().unwrap() % 3) as usize]
        };
        let mut parents = Vec::new();
        let mut stack = 0;
        for (j, earlier) in manifests.iter().enumerate() {
            let edge = EdgeKind::ALL
                .iter()
                .copied()
                .find(|e| e.allows(kind, earlier.kind));
            if let Some(edge) = edge
                && pick.next().unwrap() % 3 == 0
                && parents.len() < 4
            {
                let share = pick.next().unwrap() % 400_000;
                if stack + share <= 1_000_000 {
                    stack += share;
                    parents.push(ParentEdge {
                        parent: manifests[j].id(),
                        kind: edge,
                        share: ppm(share),
                    });
                }
            }
        }
        let member_count = (pick.next().unwrap() % 12) as usize;
        let members = |role: &str| {
            (0..member_count)
                .map(|m| Member {
                    account: Address::from_label(&format!("{role} {i} {m}")),
                    weight: 1 + (pick_weight(seed, i + m) as u64),
                })
                .collect::<Vec<_>>()
        };
        let roles = match kind {
            AssetKind::Dataset => vec![
                RoleShare {
                    role: Role::Developer,
                    share: ppm(100_000),
                    members: vec![Member {
                        account: Address::from_label(&format!("dev {i}")),
                        weight: 1,
                    }],
                },
                RoleShare {
                    role: Role::DataContributor,
                    share: ppm(850_000),
                    members: members("contributor"),
                },
                RoleShare {
                    role: Role::ComputeNode,
                    share: ppm(50_000),
                    members: vec![],
                },
            ],
            AssetKind::Model => vec![
                RoleShare {
                    role: Role::Developer,
                    share: ppm(700_000),
                    members: members("developer"),
                },
                RoleShare {
                    role: Role::Validator,
                    share: ppm(100_000),
                    members: vec![],
                },
                RoleShare {
                    role: Role::ComputeNode,
                    share: ppm(200_000),
                    members: vec![],
                },
            ],
            AssetKind::Agent => vec![],
        };
        let mut manifest = Manifest {
            kind,
            name: format!("asset {i}"),
            owner: Address::from_label(&format!("owner {i}")),
            content: keccak256(&i.to_be_bytes()),
            licence: Licence::OpenUse,
            parents,
            roles,
        };
        manifest.normalise();
        manifests.push(manifest);
    }
    let usages = usage_amounts
        .iter()
        .enumerate()
        .map(|(k, amount)| {
            let asset = manifests[seed[k % seed.len()] as usize % manifests.len()].id();
            Usage {
                asset,
                payer: Address::from_label(&format!("payer {}", k % 3)),
                token: token(),
                amount: *amount as u128,
                calls: 1,
                node: Address::from_label(&format!("node {}", k % 4)),
            }
        })
        .collect();
    World {
        manifests,
        usages,
        fee,
    }
}

fn pick_weight(seed: &[u32], i: usize) -> u32 {
    seed[i % seed.len()] % 1000
}

type SealedLog = Vec<(Envelope, Vec<u8>)>;

/// Feeds the world into a fresh economy, returning it and every sealed (envelope, body).
fn run(world: &World, usage_order: &[usize]) -> (Economy, SealedLog, Vec<EpochBundle>) {
    let mut economy = Economy::default();
    let mut log = Vec::new();
    let mut bundles = Vec::new();
    let push = |economy: &mut Economy, log: &mut Vec<_>, event| {
        log.push(economy.append(event, 1).unwrap())
    };
    push(
        &mut economy,
        &mut log,
        Event::Genesis(Genesis {
            treasury: Address::from_label("treasury"),
            protocol_fee: ppm(world.fee),
        }),
    );
    push(
        &mut economy,
        &mut log,
        Event::TokenRegistered(Token {
            address: token(),
            symbol: "TKN".into(),
            decimals: 6,
        }),
    );
    for manifest in &world.manifests {
        push(
            &mut economy,
            &mut log,
            Event::AssetRegistered(manifest.clone()),
        );
    }
    for p in 0..3 {
        push(
            &mut economy,
            &mut log,
            Event::Deposited {
                payer: Address::from_label(&format!("payer {p}")),
                token: token(),
                amount: u64::MAX as u128 * 64,
            },
        );
    }
    let half = usage_order.len() / 2;
    for (round, slice) in [&usage_order[..half], &usage_order[half..]]
        .into_iter()
        .enumerate()
    {
        for k in slice {
            // Every third use comes through the gateway as a metered call, which must pay
            // exactly what the same usage record pays.
            let usage = world.usages[*k].clone();
            let event = if k % 3 == 0 {
                Event::CallMetered(MeteredCall {
                    payer: usage.payer,
                    token: usage.token,
                    node: usage.node,
                    request: None,
                    parts: vec![CallPart {
                        asset: usage.asset,
                        amount: usage.amount,
                        calls: usage.calls,
                    }],
                    trace: format!("[{k}]"),
                })
            } else {
                Event::UsageRecorded(usage)
            };
            push(&mut economy, &mut log, event);
        }
        let (outcome, envelope, body) = economy.close_epoch(2 + round as u64).unwrap();
        bundles.push(economy.epoch_bundle(&outcome, envelope.seq, envelope.hash, envelope.at_ms));
        log.push((envelope, body));
        // After the first epoch, two in three beneficiaries choose one of two other chains to
        // be paid on from now on.
        if round == 0 {
            for (i, leaf) in outcome.leaves.iter().enumerate() {
                let chain_id = [HOME_CHAIN, 10, 8453][i % 3];
                if chain_id != HOME_CHAIN {
                    let choice = Event::PayoutChainChosen {
                        account: leaf.account,
                        chain_id,
                    };
                    push(&mut economy, &mut log, choice);
                }
            }
        }
    }
    (economy, log, bundles)
}

fn total(
    economy: &Economy,
    pred: impl Fn(&AccountRef) -> bool,
    pick: impl Fn(&Balance) -> u128,
) -> u128 {
    economy
        .ledger()
        .entries()
        .filter(|((a, _), _)| pred(a))
        .map(|(_, b)| pick(b))
        .sum()
}

fn strategy() -> impl Strategy<Value = World> {
    (
        proptest::collection::vec(any::<u32>(), 8..40),
        2usize..14,
        // Tiny amounts as well as ordinary ones, so that carrying dust is exercised too.
        proptest::collection::vec(prop_oneof![1u64..40, 1u64..5_000_000], 1..60),
        0u32..100_000,
    )
        .prop_map(|(seed, assets, amounts, fee)| build_world(&seed, assets, &amounts, fee))
}

fn config(cases: u32, seed: u64) -> Config {
    Config {
        cases,
        rng_seed: RngSeed::Fixed(seed),
        failure_persistence: None,
        ..Config::default()
    }
}

#[test]
fn value_is_conserved_to_the_last_base_unit() {
    let carried_somewhere = std::cell::Cell::new(false);
    TestRunner::new(config(128, 1))
        .run(&strategy(), |world| {
            let order: Vec<usize> = (0..world.usages.len()).collect();
            let (economy, _, bundles) = run(&world, &order);
            economy.ledger().assert_balanced();
            let charged: u128 = world.usages.iter().map(|u| u.amount).sum();
            let entitled = total(
                &economy,
                |a| matches!(a, AccountRef::Beneficiary(_)),
                |b| b.credits,
            );
            let carried = total(
                &economy,
                |a| matches!(a, AccountRef::CarryForward(_)),
                Balance::available,
            );
            let stuck = total(
                &economy,
                |a| matches!(a, AccountRef::AssetRevenue(_) | AccountRef::Treasury),
                Balance::available,
            );
            prop_assert_eq!(stuck, 0, "revenue left unassigned after close");
            carried_somewhere.set(carried_somewhere.get() || carried > 0);
            prop_assert_eq!(entitled + carried, charged);
            for bundle in &bundles {
                let paid: u128 = bundle
                    .payouts
                    .iter()
                    .filter(|p| !matches!(p.to, PayoutTo::Parent { .. }))
                    .map(|p| p.amount)
                    .sum();
                let accrued: u128 = bundle.accruals.iter().map(|a| a.amount).sum();
                prop_assert_eq!(paid, accrued);
            }
            Ok(())
        })
        .unwrap();
    assert!(
        carried_somewhere.get(),
        "no case carried dust: the strategy no longer exercises carry-forward"
    );
}

#[test]
fn propagation_does_not_depend_on_event_order_within_an_epoch() {
    TestRunner::new(config(64, 2))
        .run(&(strategy(), any::<u64>()), |(world, shuffle_seed)| {
            let order: Vec<usize> = (0..world.usages.len()).collect();
            let half = order.len() / 2;
            // A random permutation inside each epoch (`run` closes after the first half): the
            // same events per epoch, in another order.
            let mut shuffled = order.clone();
            let mut state = shuffle_seed;
            for range in [0..half, half..order.len()] {
                let part = &mut shuffled[range];
                for i in (1..part.len()).rev() {
                    state = state
                        .wrapping_mul(6_364_136_223_846_793_005)
                        .wrapping_add(1_442_695_040_888_963_407);
                    part.swap(i, (state >> 33) as usize % (i + 1));
                }
            }
            let (a, _, bundles_a) = run(&world, &order);
            let (b, _, bundles_b) = run(&world, &shuffled);
            prop_assert_eq!(a.ledger().sorted_entries(), b.ledger().sorted_entries());
            for (x, y) in bundles_a.iter().zip(&bundles_b) {
                prop_assert_eq!(x.root, y.root);
                prop_assert_eq!(&x.payouts, &y.payouts);
            }
            Ok(())
        })
        .unwrap();
}

#[test]
fn replay_reproduces_balances_state_hash_and_roots() {
    TestRunner::new(config(64, 3))
        .run(&strategy(), |world| {
            let order: Vec<usize> = (0..world.usages.len()).collect();
            let (live, log, _) = run(&world, &order);
            let mut replayed = Economy::default();
            for (envelope, body) in &log {
                replayed
                    .replay(envelope.seq, envelope.at_ms, &envelope.hash, body)
                    .unwrap();
            }
            prop_assert_eq!(replayed.state_hash(), live.state_hash());
            prop_assert_eq!(replayed.epochs(), live.epochs());
            prop_assert_eq!(
                replayed.ledger().sorted_entries(),
                live.ledger().sorted_entries()
            );
            Ok(())
        })
        .unwrap();
}

#[test]
fn a_snapshot_plus_the_events_after_it_equals_a_full_replay() {
    TestRunner::new(config(48, 5))
        .run(
            &(strategy(), any::<prop::sample::Index>()),
            |(world, cut)| {
                let order: Vec<usize> = (0..world.usages.len()).collect();
                let (live, log, _) = run(&world, &order);
                let cut = cut.index(log.len());
                let mut before = Economy::default();
                for (envelope, body) in &log[..cut] {
                    before
                        .replay(envelope.seq, envelope.at_ms, &envelope.hash, body)
                        .unwrap();
                }
                let bytes = before.encode_state();
                let mut restored = Economy::decode_state(&bytes).unwrap();
                prop_assert_eq!(restored.state_hash(), before.state_hash());
                for (envelope, body) in &log[cut..] {
                    restored
                        .replay(envelope.seq, envelope.at_ms, &envelope.hash, body)
                        .unwrap();
                }
                prop_assert_eq!(restored.state_hash(), live.state_hash());
                prop_assert_eq!(restored.epochs(), live.epochs());
                let mut truncated = bytes.clone();
                truncated.pop();
                prop_assert!(Economy::decode_state(&truncated).is_err());
                Ok(())
            },
        )
        .unwrap();
}

#[test]
fn bundles_re_check_and_every_proof_verifies() {
    TestRunner::new(config(48, 4))
        .run(&strategy(), |world| {
            let order: Vec<usize> = (0..world.usages.len()).collect();
            let (_, _, bundles) = run(&world, &order);
            let first = verify_bundle(&bundles[0], None).unwrap();
            prop_assert!(!first.checked_against_previous);
            let second = verify_bundle(&bundles[1], Some(&bundles[0])).unwrap();
            prop_assert!(second.checked_against_previous);
            let tree = MerkleTree::build(&bundles[1].leaves);
            for (i, leaf) in bundles[1].leaves.iter().enumerate() {
                prop_assert!(verify_proof(&bundles[1].root, leaf, &tree.proof(i)));
            }
            if let Some(first_leaf) = bundles[1].leaves.first() {
                let mut forged = bundles[1].clone();
                forged.leaves[0].cumulative = first_leaf.cumulative + 1;
                prop_assert!(verify_bundle(&forged, Some(&bundles[0])).is_err());
                forged.root = MerkleTree::build(&forged.leaves).root();
                prop_assert!(
                    verify_bundle(&forged, Some(&bundles[0])).is_err(),
                    "a leaf inflated with a matching root must still fail against the payouts"
                );
            }
            Ok(())
        })
        .unwrap();
}

#[test]
fn the_chains_together_pay_each_entitlement_once_and_never_less_than_before() {
    let chosen_somewhere = std::cell::Cell::new(false);
    TestRunner::new(config(64, 6))
        .run(&strategy(), |world| {
            let order: Vec<usize> = (0..world.usages.len()).collect();
            let (_, _, bundles) = run(&world, &order);
            prop_assert!(
                bundles[0].chains.is_empty(),
                "nobody had chosen a chain yet"
            );
            prop_assert_eq!(bundles[0].chain_root(HOME_CHAIN), bundles[0].root);
            let later = &bundles[1];
            chosen_somewhere.set(chosen_somewhere.get() || !later.chains.is_empty());
            let mut summed: std::collections::BTreeMap<(Address, Address), u128> =
                Default::default();
            for chain_id in [HOME_CHAIN, 10, 8453] {
                let leaves = later.chain_leaves(chain_id);
                prop_assert_eq!(
                    later.chain_root(chain_id),
                    MerkleTree::build(&leaves).root()
                );
                let tree = MerkleTree::build(&leaves);
                for (i, leaf) in leaves.iter().enumerate() {
                    prop_assert!(verify_proof(
                        &later.chain_root(chain_id),
                        leaf,
                        &tree.proof(i)
                    ));
                    *summed.entry((leaf.account, leaf.token)).or_default() += leaf.cumulative;
                }
                // What the first epoch paid on home stays there: chains never lower anyone.
                if chain_id == HOME_CHAIN {
                    for before in bundles[0].chain_leaves(HOME_CHAIN) {
                        let after = leaves
                            .iter()
                            .find(|l| (l.account, l.token) == (before.account, before.token))
                            .map_or(0, |l| l.cumulative);
                        prop_assert!(after >= before.cumulative);
                    }
                }
            }
            let whole: std::collections::BTreeMap<_, _> = later
                .leaves
                .iter()
                .map(|l| ((l.account, l.token), l.cumulative))
                .collect();
            prop_assert_eq!(
                &summed,
                &whole,
                "home plus the chosen chains is each entitlement"
            );
            verify_bundle(later, Some(&bundles[0])).unwrap();
            if !later.chains.is_empty() {
                // Moving one unit from home to a chosen chain lowers what home paid before.
                let mut forged = later.clone();
                forged.chains[0].leaves[0].cumulative += 1;
                prop_assert!(verify_bundle(&forged, Some(&bundles[0])).is_err());
                forged.chains[0].root = MerkleTree::build(&forged.chains[0].leaves).root();
                prop_assert!(verify_bundle(&forged, Some(&bundles[0])).is_err());
                // More than the whole entitlement fails from the bundle alone.
                let leaf = forged.chains[0].leaves[0];
                forged.chains[0].leaves[0].cumulative = whole[&(leaf.account, leaf.token)] + 1;
                forged.chains[0].root = MerkleTree::build(&forged.chains[0].leaves).root();
                prop_assert!(verify_bundle(&forged, None).is_err());
            }
            Ok(())
        })
        .unwrap();
    assert!(
        chosen_somewhere.get(),
        "no case paid anyone on a chosen chain: the strategy no longer exercises choices"
    );
}

#[test]
fn a_tampered_log_is_refused_on_replay() {
    let world = build_world(
        &[5, 9, 13, 2, 7, 1, 8, 3],
        6,
        &[1000, 2000, 3000, 4000],
        20_000,
    );
    let order: Vec<usize> = (0..world.usages.len()).collect();
    let (_, log, _) = run(&world, &order);
    let mut bodies: Vec<_> = log.clone();
    let last_usage = bodies
        .iter()
        .rposition(|(e, _)| matches!(e.event, Event::UsageRecorded(_)))
        .unwrap();
    let mut body = bodies[last_usage].1.clone();
    let at = body.len() - 40;
    body[at] ^= 1;
    bodies[last_usage].1 = body;
    let mut economy = Economy::default();
    let error = bodies
        .iter()
        .map(|(e, b)| economy.replay(e.seq, e.at_ms, &e.hash, b))
        .find_map(Result::err)
        .unwrap();
    assert!(matches!(error, ReplayError::Chain(_)), "{error}");
}

#[test]
fn corrupt_events_and_snapshots_are_errors_never_panics() {
    let world = build_world(
        &[5, 9, 13, 2, 7, 1, 8, 3],
        6,
        &[1000, 2000, 30, 4000],
        20_000,
    );
    let order: Vec<usize> = (0..world.usages.len()).collect();
    let (economy, log, _) = run(&world, &order);
    let state = economy.encode_state();
    let bodies: Vec<Vec<u8>> = log.into_iter().map(|(_, body)| body).collect();
    let inputs = std::cell::Cell::new(0u64);
    // At least 512 cases; more when `PROPTEST_CASES` asks for more (a fuzzing campaign).
    TestRunner::new(config(Config::default().cases.max(512), 6))
        .run(
            &(
                any::<prop::sample::Index>(),
                any::<prop::sample::Index>(),
                any::<u8>(),
                proptest::collection::vec(any::<u8>(), 0..200),
            ),
            |(which, at, flip, noise)| {
                inputs.set(inputs.get() + 1);
                let mut body = bodies[which.index(bodies.len())].clone();
                let position = at.index(body.len());
                body[position] ^= flip | 1;
                let _ = Event::decode(&body);
                let _ = Event::decode(&noise);
                let mut snapshot = state.clone();
                let position = at.index(snapshot.len());
                snapshot[position] ^= flip | 1;
                if let Ok(decoded) = Economy::decode_state(&snapshot) {
                    prop_assert!(
                        decoded.ledger().check_balanced().is_ok(),
                        "a decoded snapshot always balances"
                    );
                }
                prop_assert!(Economy::decode_state(&noise).is_err());
                Ok(())
            },
        )
        .unwrap();
    // Each case decodes a changed event, arbitrary bytes as an event, a changed snapshot and
    // arbitrary bytes as a snapshot.
    println!(
        "fuzzed the event codec and snapshots: {} inputs",
        inputs.get() * 4
    );
}
