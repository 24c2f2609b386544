//! Worked examples of the economy's rules and one test per refused event.

use caravan_core::economy::EventError;
use caravan_core::ledger::LedgerError;
use caravan_core::*;

fn ppm(parts: u32) -> Ppm {
    Ppm::new(parts).unwrap()
}

fn usdc() -> Token {
    Token {
        address: Address::from_label("usdc"),
        symbol: "USDC".into(),
        decimals: 6,
    }
}

fn started(fee: u32) -> Economy {
    let mut economy = Economy::default();
    economy
        .append(
            Event::Genesis(Genesis {
                treasury: Address::from_label("treasury"),
                protocol_fee: ppm(fee),
            }),
            0,
        )
        .unwrap();
    economy.append(Event::TokenRegistered(usdc()), 0).unwrap();
    economy
}

fn dataset(contributors: &[(&str, u64)]) -> Manifest {
    let mut manifest = Manifest {
        kind: AssetKind::Dataset,
        name: "reviews".into(),
        owner: Address::from_label("requester"),
        content: keccak256(b"reviews"),
        licence: Licence::OpenUse,
        parents: vec![],
        roles: vec![RoleShare {
            role: Role::DataContributor,
            share: Ppm::ONE,
            members: contributors
                .iter()
                .map(|(l, w)| Member {
                    account: Address::from_label(l),
                    weight: *w,
                })
                .collect(),
        }],
    };
    manifest.normalise();
    manifest
}

fn model(parent: AssetId, share: u32) -> Manifest {
    Manifest {
        kind: AssetKind::Model,
        name: "sentiment".into(),
        owner: Address::from_label("developer"),
        content: keccak256(b"weights"),
        licence: Licence::Commercial {
            token: usdc().address,
            price_per_call: 1_000,
            derivative_royalty: ppm(0),
        },
        parents: vec![ParentEdge {
            parent,
            kind: EdgeKind::TrainedOn,
            share: ppm(share),
        }],
        roles: vec![
            RoleShare {
                role: Role::Developer,
                share: ppm(750_000),
                members: vec![Member {
                    account: Address::from_label("developer"),
                    weight: 1,
                }],
            },
            RoleShare {
                role: Role::ComputeNode,
                share: ppm(250_000),
                members: vec![],
            },
        ],
    }
}

fn entitled(economy: &Economy, label: &str) -> u128 {
    economy
        .ledger()
        .balance(
            &AccountRef::Beneficiary(Address::from_label(label)),
            &usdc().address,
        )
        .credits
}

/// An economy with `fee`, a dataset of alice (weight 3) and bob (weight 1), a model giving it
/// `share`, and a payer holding 1 USDC. Returns the economy, the model's id and the payer.
fn model_on_dataset(fee: u32, share: u32) -> (Economy, AssetId, Address) {
    let mut economy = started(fee);
    let data = dataset(&[("alice", 3), ("bob", 1)]);
    let data_id = data.id();
    economy.append(Event::AssetRegistered(data), 0).unwrap();
    let priced = model(data_id, share);
    let model_id = priced.id();
    economy.append(Event::AssetRegistered(priced), 0).unwrap();
    let payer = Address::from_label("shop");
    let deposit = Event::Deposited {
        payer,
        token: usdc().address,
        amount: 1_000_000,
    };
    economy.append(deposit, 0).unwrap();
    (economy, model_id, payer)
}

#[test]
fn a_paid_call_flows_to_the_treasury_the_model_the_node_and_the_labelers() {
    // 2% protocol fee; the model gives 40% to the dataset.
    let (mut economy, model_id, payer) = model_on_dataset(20_000, 400_000);
    let node = Address::from_label("node");
    economy
        .append(
            Event::UsageRecorded(Usage {
                asset: model_id,
                payer,
                token: usdc().address,
                amount: 100_000,
                calls: 100,
                node,
            }),
            0,
        )
        .unwrap();
    economy.close_epoch(1).unwrap();

    // 100_000 charged: 2_000 fee; 98_000 to the model; 39_200 to the dataset (alice 3/4, bob 1/4);
    // 58_800 kept: 44_100 developer, 14_700 node.
    assert_eq!(entitled(&economy, "treasury"), 2_000);
    assert_eq!(entitled(&economy, "alice"), 29_400);
    assert_eq!(entitled(&economy, "bob"), 9_800);
    assert_eq!(entitled(&economy, "developer"), 44_100);
    assert_eq!(entitled(&economy, "node"), 14_700);
    assert_eq!(
        economy
            .ledger()
            .balance(&AccountRef::Payer(payer), &usdc().address)
            .available(),
        900_000
    );
    economy.ledger().assert_balanced();
}

#[test]
fn a_chosen_chain_pays_what_is_earned_after_the_choice_and_home_keeps_the_rest() {
    let (mut economy, model_id, payer) = model_on_dataset(20_000, 400_000);
    let alice = Address::from_label("alice");
    let call = Event::UsageRecorded(Usage {
        asset: model_id,
        payer,
        token: usdc().address,
        amount: 100_000,
        calls: 100,
        node: Address::from_label("node"),
    });
    let close = |economy: &mut Economy, at| {
        let (outcome, envelope, _) = economy.close_epoch(at).unwrap();
        economy.epoch_bundle(&outcome, envelope.seq, envelope.hash, at)
    };
    let paid = |bundle: &EpochBundle, chain_id| {
        bundle
            .chain_leaves(chain_id)
            .iter()
            .find(|l| l.account == alice)
            .map_or(0, |l| l.cumulative)
    };
    economy.append(call.clone(), 1).unwrap();
    let first = close(&mut economy, 1);
    assert!(first.chains.is_empty());
    assert_eq!(first.chain_root(HOME_CHAIN), first.root);
    assert_eq!(paid(&first, HOME_CHAIN), 29_400);

    let choose = |chain_id| Event::PayoutChainChosen {
        account: alice,
        chain_id,
    };
    economy.append(choose(8453), 2).unwrap();
    assert_eq!(economy.payout_chain(&alice), 8453);
    assert_eq!(
        economy.append(choose(8453), 2).unwrap_err(),
        EventError::PayoutChainUnchanged {
            account: alice,
            chain_id: 8453
        }
    );
    economy.append(call.clone(), 2).unwrap();
    let second = close(&mut economy, 2);
    assert_eq!(
        paid(&second, HOME_CHAIN),
        29_400,
        "earned before the choice"
    );
    assert_eq!(paid(&second, 8453), 29_400, "earned after it");
    assert_eq!(paid(&second, 10), 0, "a chain nobody chose pays nothing");
    assert_ne!(second.chain_root(HOME_CHAIN), second.root);
    verify_bundle(&second, Some(&first)).unwrap();
    // A wallet's proofs: one per chain that pays alice, each against that chain's root.
    let proofs = second.proofs_for(&alice);
    assert_eq!(
        proofs.iter().map(|p| p.chain).collect::<Vec<_>>(),
        vec![HOME_CHAIN, 8453]
    );
    for chain in &proofs {
        assert_eq!(chain.root, second.chain_root(chain.chain));
        assert_eq!(chain.leaves.len(), 1);
        let proven = &chain.leaves[0];
        assert_eq!(proven.leaf.cumulative, 29_400);
        assert!(caravan_core::verify_proof(
            &chain.root,
            &proven.leaf,
            &proven.proof
        ));
    }
    assert!(second.proofs_for(&Address::from_label("nobody")).is_empty());

    // Back home: chain 8453 keeps what it pays, home gets the new earnings.
    economy.append(choose(HOME_CHAIN), 3).unwrap();
    economy.append(call, 3).unwrap();
    let third = close(&mut economy, 3);
    assert_eq!(paid(&third, HOME_CHAIN), 58_800);
    assert_eq!(paid(&third, 8453), 29_400);
    verify_bundle(&third, Some(&second)).unwrap();
    let restored = Economy::decode_state(&economy.encode_state()).unwrap();
    assert_eq!(restored.state_hash(), economy.state_hash());
}

#[test]
fn amounts_too_small_to_split_are_carried_to_the_next_epoch() {
    let mut economy = started(0);
    let contributors: Vec<(String, u64)> = (0..10).map(|i| (format!("c{i}"), 1)).collect();
    let refs: Vec<(&str, u64)> = contributors.iter().map(|(l, w)| (l.as_str(), *w)).collect();
    let data = dataset(&refs);
    let id = data.id();
    economy.append(Event::AssetRegistered(data), 0).unwrap();
    let payer = Address::from_label("p");
    economy
        .append(
            Event::Deposited {
                payer,
                token: usdc().address,
                amount: 100,
            },
            0,
        )
        .unwrap();
    let usage = Usage {
        asset: id,
        payer,
        token: usdc().address,
        amount: 6,
        calls: 1,
        node: payer,
    };
    economy
        .append(Event::UsageRecorded(usage.clone()), 0)
        .unwrap();
    let (first, _, _) = economy.close_epoch(1).unwrap();
    assert_eq!(
        first.payouts,
        vec![Payout {
            asset: id,
            token: usdc().address,
            to: PayoutTo::Carry,
            amount: 6
        }]
    );
    assert_eq!(
        economy
            .ledger()
            .balance(&AccountRef::CarryForward(id), &usdc().address)
            .available(),
        6
    );
    economy.append(Event::UsageRecorded(usage), 0).unwrap();
    let (second, _, _) = economy.close_epoch(2).unwrap();
    let paid: u128 = second.payouts.iter().map(|p| p.amount).sum();
    assert_eq!(paid, 12);
    assert!(
        second
            .payouts
            .iter()
            .all(|p| matches!(p.to, PayoutTo::Member { .. }))
    );
    assert_eq!(
        second.leaves.len(),
        10,
        "every contributor got at least one unit once enough was pooled"
    );
    assert_eq!(
        economy
            .ledger()
            .balance(&AccountRef::CarryForward(id), &usdc().address)
            .available(),
        0
    );
}

#[test]
fn each_refused_event_says_why_and_changes_nothing() {
    let mut fresh = Economy::default();
    assert_eq!(
        fresh.append(Event::TokenRegistered(usdc()), 0).unwrap_err(),
        EventError::NoGenesis
    );
    assert_eq!(fresh.close_epoch(0).err(), Some(EventError::NoGenesis));

    let mut economy = started(0);
    let before = economy.state_hash();
    let genesis = Event::Genesis(Genesis {
        treasury: Address::ZERO,
        protocol_fee: Ppm::ZERO,
    });
    assert_eq!(
        economy.append(genesis, 0).unwrap_err(),
        EventError::GenesisRepeated
    );
    assert_eq!(
        economy
            .append(Event::TokenRegistered(usdc()), 0)
            .unwrap_err(),
        EventError::TokenExists(usdc().address)
    );
    let bad_token = Token {
        address: Address::ZERO,
        symbol: "NOT A SYMBOL".into(),
        decimals: 6,
    };
    assert!(matches!(
        economy.append(Event::TokenRegistered(bad_token), 0),
        Err(EventError::InvalidToken(_))
    ));
    let stranger = Address::from_label("stranger");
    assert_eq!(
        economy
            .append(
                Event::Deposited {
                    payer: stranger,
                    token: stranger,
                    amount: 1
                },
                0
            )
            .unwrap_err(),
        EventError::UnknownToken(stranger)
    );
    assert_eq!(
        economy
            .append(
                Event::Deposited {
                    payer: stranger,
                    token: usdc().address,
                    amount: 0
                },
                0
            )
            .unwrap_err(),
        EventError::Zero { what: "a deposit" }
    );

    let data = dataset(&[("a", 1)]);
    let data_id = data.id();
    let usage = Usage {
        asset: data_id,
        payer: stranger,
        token: usdc().address,
        amount: 5,
        calls: 1,
        node: stranger,
    };
    assert_eq!(
        economy
            .append(Event::UsageRecorded(usage.clone()), 0)
            .unwrap_err(),
        EventError::UnknownAsset(data_id)
    );
    assert_eq!(
        economy.state_hash(),
        before,
        "refused events change nothing"
    );

    economy
        .append(Event::AssetRegistered(data.clone()), 0)
        .unwrap();
    assert!(matches!(
        economy.append(Event::AssetRegistered(data), 0),
        Err(EventError::Lineage(_))
    ));
    assert!(matches!(
        economy.append(Event::UsageRecorded(usage.clone()), 0),
        Err(EventError::Ledger(LedgerError::InsufficientBalance {
            available: 0,
            needed: 5,
            ..
        }))
    ));
    assert_eq!(
        economy
            .append(
                Event::UsageRecorded(Usage {
                    amount: 0,
                    ..usage.clone()
                }),
                0
            )
            .unwrap_err(),
        EventError::Zero {
            what: "a usage amount"
        }
    );
    assert_eq!(
        economy
            .append(
                Event::UsageRecorded(Usage {
                    calls: 0,
                    ..usage.clone()
                }),
                0
            )
            .unwrap_err(),
        EventError::Zero {
            what: "a usage call count"
        }
    );

    let mut private = dataset(&[("b", 1)]);
    private.licence = Licence::NonCommercial;
    let private_id = private.id();
    economy.append(Event::AssetRegistered(private), 0).unwrap();
    economy
        .append(
            Event::Deposited {
                payer: stranger,
                token: usdc().address,
                amount: 50,
            },
            0,
        )
        .unwrap();
    assert_eq!(
        economy
            .append(
                Event::UsageRecorded(Usage {
                    asset: private_id,
                    ..usage.clone()
                }),
                0
            )
            .unwrap_err(),
        EventError::NonCommercialUse(private_id)
    );

    let other = Token {
        address: Address::from_label("dai"),
        symbol: "DAI".into(),
        decimals: 18,
    };
    economy
        .append(Event::TokenRegistered(other.clone()), 0)
        .unwrap();
    let priced = model(data_id, 0);
    let priced_id = priced.id();
    economy.append(Event::AssetRegistered(priced), 0).unwrap();
    assert_eq!(
        economy
            .append(
                Event::UsageRecorded(Usage {
                    asset: priced_id,
                    token: other.address,
                    ..usage
                }),
                0
            )
            .unwrap_err(),
        EventError::WrongToken {
            asset: priced_id,
            expected: usdc().address,
            given: other.address
        }
    );
}

#[test]
fn a_replay_whose_close_disagrees_with_the_recorded_root_is_refused() {
    let mut economy = started(0);
    let data = dataset(&[("a", 1)]);
    let id = data.id();
    let payer = Address::from_label("p");
    let mut log = vec![];
    for event in [
        Event::AssetRegistered(data),
        Event::Deposited {
            payer,
            token: usdc().address,
            amount: 10,
        },
        Event::UsageRecorded(Usage {
            asset: id,
            payer,
            token: usdc().address,
            amount: 10,
            calls: 1,
            node: payer,
        }),
    ] {
        log.push(economy.append(event, 0).unwrap());
    }
    let mut replayed = started(0);
    for (envelope, body) in &log {
        replayed
            .replay(envelope.seq, envelope.at_ms, &envelope.hash, body)
            .unwrap();
    }
    let forged = Event::EpochClosed {
        epoch: 1,
        root: Hash32([7; 32]),
    };
    let mut head = replayed.head();
    let (envelope, body) = head.seal(forged, 5);
    let error = replayed
        .replay(envelope.seq, envelope.at_ms, &envelope.hash, &body)
        .err()
        .expect("a close whose root the rules do not give is refused");
    assert!(
        error.to_string().contains("the log and the rules disagree"),
        "{error}"
    );
}

#[test]
fn every_way_a_bundle_can_be_wrong_is_named() {
    use caravan_core::epoch::{BundleError, EpochBundle};
    let (mut economy, model_id, payer) = model_on_dataset(10_000, 300_000);
    let mut bundles = Vec::new();
    for round in 0..2 {
        let usage = Usage {
            asset: model_id,
            payer,
            token: usdc().address,
            amount: 10_000 + round,
            calls: 10,
            node: Address::from_label("node"),
        };
        economy.append(Event::UsageRecorded(usage), 0).unwrap();
        let (outcome, envelope, _) = economy.close_epoch(round as u64).unwrap();
        bundles.push(economy.epoch_bundle(&outcome, envelope.seq, envelope.hash, envelope.at_ms));
    }
    let (first, second) = (&bundles[0], &bundles[1]);
    assert!(
        verify_bundle(second, Some(first))
            .unwrap()
            .checked_against_previous
    );

    let wrong = |change: &dyn Fn(&mut EpochBundle)| {
        let mut bundle = second.clone();
        change(&mut bundle);
        verify_bundle(&bundle, Some(first)).unwrap_err()
    };
    assert!(matches!(
        wrong(&|b| b.format = "other/9".into()),
        BundleError::Format(_)
    ));
    assert!(matches!(
        wrong(&|b| b.leaves.swap(0, 1)),
        BundleError::LeafOrder(1)
    ));
    assert!(matches!(
        wrong(&|b| b.root = Hash32([1; 32])),
        BundleError::Root { .. }
    ));
    assert!(matches!(
        wrong(&|b| {
            b.assets.remove(0);
        }),
        BundleError::Lineage(_)
    ));
    assert!(
        matches!(wrong(&|b| { b.assets.pop(); }), BundleError::MissingAsset(id) if id == model_id)
    );
    // Found by the bundle fuzz test: zero served revenue used to panic the payout split.
    assert!(matches!(
        wrong(&|b| b.served[0].amount = 0),
        BundleError::NothingServed { asset, .. } if asset == model_id
    ));
    assert!(matches!(
        wrong(&|b| b.payouts[0].amount += 1),
        BundleError::Payouts { index: 0, .. }
    ));
    assert!(matches!(
        verify_bundle(second, Some(second)).unwrap_err(),
        BundleError::NotTheNextEpoch { .. }
    ));
}

#[test]
fn a_budget_is_escrowed_only_from_money_the_requester_deposited() {
    let mut economy = started(0);
    let project = keccak256(b"project");
    let requester = Address::from_label("requester");
    let token = usdc().address;
    let escrow = |amount| Event::BudgetEscrowed {
        project,
        requester,
        token,
        amount,
    };
    let refused = economy.append(escrow(1), 1).unwrap_err();
    assert!(
        matches!(
            refused,
            EventError::Ledger(LedgerError::InsufficientBalance {
                account: AccountRef::Payer(_),
                available: 0,
                ..
            })
        ),
        "{refused}"
    );
    economy
        .append(
            Event::Deposited {
                payer: requester,
                token,
                amount: 100,
            },
            1,
        )
        .unwrap();
    assert!(economy.append(escrow(101), 2).is_err());
    economy.append(escrow(60), 2).unwrap();
    let balance = |account| economy.ledger().balance(&account, &token).signed();
    assert_eq!(balance(AccountRef::Payer(requester)), 40);
    assert_eq!(balance(AccountRef::Escrow(project)), 60);
    assert_eq!(
        balance(AccountRef::External(requester)),
        -100,
        "only the deposit debits the world outside"
    );
    assert_eq!(
        economy.append(escrow(0), 3).unwrap_err(),
        EventError::Zero {
            what: "an escrow amount"
        }
    );
}

#[test]
fn a_budget_funded_from_outside_by_an_older_store_still_replays() {
    let mut economy = started(0);
    let project = keccak256(b"project");
    let requester = Address::from_label("requester");
    let token = usdc().address;
    economy
        .append(
            Event::ProjectFunded {
                project,
                requester,
                token,
                amount: 100,
            },
            1,
        )
        .unwrap();
    let balance = |account| economy.ledger().balance(&account, &token).signed();
    assert_eq!(balance(AccountRef::External(requester)), -100);
    assert_eq!(balance(AccountRef::Escrow(project)), 100);
    let restored = Economy::decode_state(&economy.encode_state()).unwrap();
    assert_eq!(restored.state_hash(), economy.state_hash());
}

#[test]
fn bounties_leave_escrow_for_contributors_and_never_exceed_it() {
    let mut economy = started(50_000);
    let project = keccak256(b"project");
    let requester = Address::from_label("requester");
    let token = usdc().address;
    economy
        .append(
            Event::Deposited {
                payer: requester,
                token,
                amount: 100,
            },
            1,
        )
        .unwrap();
    economy
        .append(
            Event::BudgetEscrowed {
                project,
                requester,
                token,
                amount: 100,
            },
            1,
        )
        .unwrap();
    let work = |bounties: &[(&str, u128)]| Event::WorkRecorded {
        project,
        record: r#"{"type":"judgment_submitted"}"#.into(),
        token,
        bounties: bounties
            .iter()
            .enumerate()
            .map(|(judgment, (who, amount))| Bounty {
                contributor: Address::from_label(who),
                amount: *amount,
                judgment: judgment as u32,
            })
            .collect(),
    };
    economy.append(work(&[]), 2).unwrap();
    economy
        .append(work(&[("alice", 60), ("bob", 30)]), 3)
        .unwrap();
    assert_eq!(
        entitled(&economy, "alice"),
        60,
        "no protocol fee on bounties"
    );
    let escrow = AccountRef::Escrow(project);
    assert_eq!(economy.ledger().balance(&escrow, &token).available(), 10);

    // A record whose bounties together exceed the escrow is refused whole: carol's 5 alone
    // would fit, but not with dave's 6.
    let over = economy
        .append(work(&[("carol", 5), ("dave", 6)]), 4)
        .unwrap_err();
    assert!(
        matches!(
            over,
            EventError::Ledger(LedgerError::InsufficientBalance { available: 10, .. })
        ),
        "{over}"
    );
    assert_eq!(entitled(&economy, "carol"), 0);
    assert_eq!(
        economy.append(work(&[("carol", 0)]), 4).unwrap_err(),
        EventError::Zero { what: "a bounty" }
    );
    let stranger = Address::from_label("unregistered token");
    let unknown = Event::BudgetEscrowed {
        project,
        requester,
        token: stranger,
        amount: 5,
    };
    assert_eq!(
        economy.append(unknown, 4).unwrap_err(),
        EventError::UnknownToken(stranger)
    );
    let huge = Event::WorkRecorded {
        project,
        record: "x".repeat(MAX_WORK_RECORD_BYTES + 1),
        token,
        bounties: vec![],
    };
    assert_eq!(
        economy.append(huge, 4).unwrap_err(),
        EventError::WorkRecordTooLarge(MAX_WORK_RECORD_BYTES + 1)
    );

    // What the project no longer needs goes back to the requester; never more than is left.
    let release = |amount| Event::EscrowReleased {
        project,
        requester,
        token,
        amount,
    };
    assert!(matches!(
        economy.append(release(11), 4).unwrap_err(),
        EventError::Ledger(LedgerError::InsufficientBalance { available: 10, .. })
    ));
    economy.append(release(10), 4).unwrap();
    assert_eq!(entitled(&economy, "requester"), 10);

    // Paid bounties are entitlements: the next epoch's root pays them out on chain.
    let (outcome, envelope, _) = economy.close_epoch(5).unwrap();
    let first = economy.epoch_bundle(&outcome, envelope.seq, envelope.hash, 5);
    let alice = outcome
        .leaves
        .iter()
        .find(|l| l.account == Address::from_label("alice"))
        .unwrap();
    assert_eq!(alice.cumulative, 60);
    let credited = |bundle: &EpochBundle, who: &str| {
        bundle
            .credited
            .iter()
            .find(|c| c.account == Address::from_label(who))
            .map(|c| c.amount)
    };
    assert_eq!(
        (credited(&first, "alice"), credited(&first, "requester")),
        (Some(60), Some(10)),
        "the bundle lists the bounties and the release it did not pay as royalties"
    );
    // Escrow balances survive a snapshot.
    let restored = Economy::decode_state(&economy.encode_state()).unwrap();
    assert_eq!(restored.state_hash(), economy.state_hash());

    // Bounties of a later epoch: its bundle accounts for every leaf's growth against the one
    // before, and the credits since the close survive a snapshot taken between closes.
    economy
        .append(
            Event::Deposited {
                payer: requester,
                token,
                amount: 50,
            },
            6,
        )
        .unwrap();
    economy
        .append(
            Event::BudgetEscrowed {
                project,
                requester,
                token,
                amount: 50,
            },
            6,
        )
        .unwrap();
    economy.append(work(&[("alice", 20)]), 7).unwrap();
    let restored = Economy::decode_state(&economy.encode_state()).unwrap();
    assert_eq!(restored.state_hash(), economy.state_hash());
    let (outcome, envelope, _) = economy.close_epoch(8).unwrap();
    let second = economy.epoch_bundle(&outcome, envelope.seq, envelope.hash, 8);
    assert_eq!(credited(&second, "alice"), Some(20));
    assert_eq!(credited(&second, "bob"), None, "bob earned nothing new");
    verify_bundle(&second, Some(&first)).unwrap();
    let mut unaccounted = second.clone();
    unaccounted.credited.clear();
    assert!(
        verify_bundle(&unaccounted, Some(&first)).is_err(),
        "without its credits alice's leaf grew from nothing"
    );
}

#[test]
fn a_metered_agent_call_charges_each_component_it_used_at_once_or_not_at_all() {
    let (mut economy, model_id, payer) = model_on_dataset(20_000, 400_000);
    let mut agent = Manifest {
        kind: AssetKind::Agent,
        name: "shop-assistant".into(),
        owner: Address::from_label("agent-builder"),
        content: keccak256(b"program"),
        licence: Licence::Commercial {
            token: usdc().address,
            price_per_call: 500,
            derivative_royalty: ppm(0),
        },
        parents: vec![ParentEdge {
            parent: model_id,
            kind: EdgeKind::ComposedOf,
            share: ppm(0),
        }],
        roles: vec![],
    };
    agent.normalise();
    let agent_id = agent.id();
    economy.append(Event::AssetRegistered(agent), 0).unwrap();
    let node = Address::from_label("node");
    let call = |agent_amount, model_amount| {
        Event::CallMetered(MeteredCall {
            payer,
            token: usdc().address,
            node,
            request: Some(keccak256(b"retry-key")),
            parts: vec![
                CallPart {
                    asset: agent_id,
                    amount: agent_amount,
                    calls: 1,
                },
                CallPart {
                    asset: model_id,
                    amount: model_amount,
                    calls: 2,
                },
            ],
            trace: r#"[{"model":"sentiment","calls":2}]"#.into(),
        })
    };
    let payer_balance = |economy: &Economy| {
        economy
            .ledger()
            .balance(&AccountRef::Payer(payer), &usdc().address)
            .available()
    };

    // More than the balance in total, though each part alone would fit: nothing is charged.
    let refused = economy.append(call(600_000, 500_000), 1).unwrap_err();
    assert!(matches!(refused, EventError::Ledger(_)), "{refused}");
    assert_eq!(payer_balance(&economy), 1_000_000);

    let (envelope, _) = economy.append(call(500, 100_000), 1).unwrap();
    assert_eq!(
        Event::decode(&envelope.event.encode()).unwrap(),
        envelope.event
    );
    assert_eq!(payer_balance(&economy), 1_000_000 - 100_500);
    economy.close_epoch(2).unwrap();
    // The model's part pays its lineage exactly as a plain usage record would (see the first
    // example): 100_000 → alice 29_400, bob 9_800, developer 44_100, node 14_700. The agent's
    // 500 (less the 2% fee, 490) goes to its owner, and the node that served it is paid nothing
    // there because the agent names no compute role.
    assert_eq!(entitled(&economy, "alice"), 29_400);
    assert_eq!(entitled(&economy, "bob"), 9_800);
    assert_eq!(entitled(&economy, "developer"), 44_100);
    assert_eq!(entitled(&economy, "node"), 14_700);
    assert_eq!(entitled(&economy, "agent-builder"), 490);
    assert_eq!(entitled(&economy, "treasury"), 2_000 + 10);
    economy.ledger().assert_balanced();

    let empty = Event::CallMetered(MeteredCall {
        payer,
        token: usdc().address,
        node,
        request: None,
        parts: vec![],
        trace: String::new(),
    });
    assert_eq!(
        economy.append(empty, 3).unwrap_err(),
        EventError::CallParts(0)
    );
    let huge = Event::AccessRecorded {
        record: "x".repeat(MAX_TRACE_BYTES + 1),
    };
    assert_eq!(
        economy.append(huge, 3).unwrap_err(),
        EventError::TraceTooLarge(MAX_TRACE_BYTES + 1)
    );
}

#[test]
fn a_validator_who_signs_an_evaluation_shares_the_validator_part_of_the_model() {
    let mut economy = started(0);
    let data = dataset(&[("alice", 1)]);
    let data_id = data.id();
    economy.append(Event::AssetRegistered(data), 0).unwrap();
    let mut validated = model(data_id, 0);
    validated.roles = vec![
        RoleShare {
            role: Role::Developer,
            share: ppm(900_000),
            members: vec![Member {
                account: Address::from_label("developer"),
                weight: 1,
            }],
        },
        RoleShare {
            role: Role::Validator,
            share: ppm(100_000),
            members: vec![],
        },
    ];
    let model_id = validated.id();
    economy
        .append(Event::AssetRegistered(validated), 0)
        .unwrap();
    let payer = Address::from_label("shop");
    economy
        .append(
            Event::Deposited {
                payer,
                token: usdc().address,
                amount: 1_000_000,
            },
            0,
        )
        .unwrap();
    let call = Event::UsageRecorded(Usage {
        asset: model_id,
        payer,
        token: usdc().address,
        amount: 100_000,
        calls: 100,
        node: Address::from_label("node"),
    });

    // Nobody has validated it yet: the validator part goes to the owner (the developer).
    economy.append(call.clone(), 1).unwrap();
    economy.close_epoch(1).unwrap();
    assert_eq!(entitled(&economy, "developer"), 100_000);

    // Two validators sign evaluations; a third claims to be one of them with its own key.
    let secret = |n: u8| [n; 32];
    let attest = |n: u8, metric: &str, value| {
        Attestation::sign(
            &secret(n),
            model_id,
            keccak256(b"held-out"),
            metric,
            value,
            2,
        )
        .unwrap()
    };
    let first = attest(7, "accuracy", 971_300);
    let second = attest(9, "accuracy", 968_000);
    economy
        .append(Event::ValidationAttested(first.clone()), 2)
        .unwrap();
    economy
        .append(Event::ValidationAttested(second.clone()), 2)
        .unwrap();
    // The same validator attesting again (another metric) does not count twice.
    economy
        .append(Event::ValidationAttested(attest(7, "f1", 950_000)), 2)
        .unwrap();
    let forged = Attestation {
        validator: first.validator,
        ..attest(11, "accuracy", 999_999)
    };
    assert!(matches!(
        economy.append(Event::ValidationAttested(forged), 2),
        Err(EventError::BadAttestation(_))
    ));
    let on_data =
        Attestation::sign(&secret(7), data_id, keccak256(b"x"), "accuracy", 1, 2).unwrap();
    assert_eq!(
        economy
            .append(Event::ValidationAttested(on_data), 2)
            .unwrap_err(),
        EventError::NotAModel(data_id)
    );
    assert_eq!(economy.attestations(&model_id).len(), 3);

    economy.append(call, 3).unwrap();
    let (outcome, envelope, _) = economy.close_epoch(3).unwrap();
    // 100_000: 90_000 developer, 10_000 split evenly between the two validators.
    assert_eq!(entitled(&economy, "developer"), 190_000);
    let credits = |account: Address| {
        economy
            .ledger()
            .balance(&AccountRef::Beneficiary(account), &usdc().address)
            .credits
    };
    assert_eq!(credits(first.validator), 5_000);
    assert_eq!(credits(second.validator), 5_000);
    // The bundle names the validators, so a third party recomputes the same payouts, and a
    // snapshot carries the attestations.
    let bundle = economy.epoch_bundle(&outcome, envelope.seq, envelope.hash, 3);
    assert_eq!(bundle.validators.len(), 2);
    verify_bundle(&bundle, None).unwrap();
    let mut dropped = bundle.clone();
    dropped.validators.clear();
    assert!(verify_bundle(&dropped, None).is_err());
    let restored = Economy::decode_state(&economy.encode_state()).unwrap();
    assert_eq!(restored.state_hash(), economy.state_hash());
    assert_eq!(restored.attestations(&model_id).len(), 3);
}

#[test]
fn a_chain_deposit_is_credited_once_and_a_withdrawal_becomes_claimable_in_the_next_root() {
    let mut economy = started(20_000);
    let payer = Address::from_label("payer");
    let token = usdc().address;
    let deposit = ChainDeposit {
        chain_id: 31_337,
        tx: keccak256(b"tx"),
        log_index: 2,
        block: 7,
        account: payer,
        token,
        amount: 1_000,
    };
    economy
        .append(Event::DepositConfirmed(deposit.clone()), 1)
        .unwrap();
    assert_eq!(
        economy
            .append(Event::DepositConfirmed(deposit.clone()), 2)
            .unwrap_err(),
        EventError::DepositRepeated {
            chain_id: 31_337,
            tx: deposit.tx,
            log_index: 2
        },
        "the same log is never credited twice"
    );
    let same_tx_other_log = ChainDeposit {
        log_index: 3,
        ..deposit.clone()
    };
    economy
        .append(Event::DepositConfirmed(same_tx_other_log), 2)
        .unwrap();
    let other_chain = ChainDeposit {
        chain_id: 8453,
        ..deposit.clone()
    };
    economy
        .append(Event::DepositConfirmed(other_chain), 2)
        .unwrap();
    let balance = |economy: &Economy, account| economy.ledger().balance(&account, &token).signed();
    assert_eq!(balance(&economy, AccountRef::Payer(payer)), 3_000);
    assert_eq!(balance(&economy, AccountRef::External(payer)), -3_000);
    assert_eq!(economy.chain_deposits().count(), 3);

    let withdraw = |amount| Event::Withdrawn {
        account: payer,
        token,
        amount,
    };
    assert!(matches!(
        economy.append(withdraw(3_001), 3).unwrap_err(),
        EventError::Ledger(LedgerError::InsufficientBalance {
            available: 3_000,
            ..
        })
    ));
    assert_eq!(
        economy.append(withdraw(0), 3).unwrap_err(),
        EventError::Zero {
            what: "a withdrawal"
        }
    );
    economy.append(withdraw(1_200), 3).unwrap();
    assert_eq!(balance(&economy, AccountRef::Payer(payer)), 1_800);
    let (outcome, _, _) = economy.close_epoch(4).unwrap();
    let leaf = outcome
        .leaves
        .iter()
        .find(|leaf| leaf.account == payer)
        .expect("the withdrawal is in the root");
    assert_eq!(
        leaf.cumulative, 1_200,
        "no protocol fee is taken from a withdrawal"
    );

    let restored = Economy::decode_state(&economy.encode_state()).unwrap();
    assert_eq!(restored.state_hash(), economy.state_hash());
    assert!(restored.has_chain_deposit(&deposit.key()));
}
