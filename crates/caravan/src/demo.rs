//! `caravan demo`: a realistic day in a small caravan economy, end to end through the real store.

use std::collections::BTreeMap;

use caravan_core::*;
use caravan_store::{Journal, Location, now_ms};
use clap::Args;

use crate::StoreArgs;
use crate::commands::print_close_summary;
use crate::present::{progress, table};

#[derive(Args)]
pub struct DemoArgs {
    /// Paid calls to simulate over the day.
    #[arg(long, default_value_t = 40_000, value_parser = clap::value_parser!(u32).range(1..=5_000_000))]
    calls: u32,
    /// Seed of the simulation: the same seed gives the same day, the same payouts and the same root.
    #[arg(long, default_value_t = 7)]
    seed: u64,
}

/// A small deterministic generator (SplitMix64), so a seed reproduces a run on every machine.
struct Dice(u64);

impl Dice {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
    /// An index drawn with probability proportional to `weights`.
    fn pick(&mut self, weights: &[u64]) -> usize {
        let mut roll = self.below(weights.iter().sum());
        for (i, w) in weights.iter().enumerate() {
            if roll < *w {
                return i;
            }
            roll -= w;
        }
        weights.len() - 1
    }
}

/// Everyone in the demo, by address, with the name people will read.
#[derive(Default)]
struct Cast(BTreeMap<Address, String>);

impl Cast {
    fn person(&mut self, name: &str) -> Address {
        let address = Address::from_label(&format!("caravan demo {name}"));
        self.0.insert(address, name.to_string());
        address
    }
    fn name(&self, address: &Address) -> String {
        self.0
            .get(address)
            .cloned()
            .unwrap_or_else(|| address.to_string())
    }
}

fn ppm(percent: u32) -> Ppm {
    Ppm::new(percent * 10_000).expect("demo shares are below 100%")
}

fn role(role: Role, percent: u32, members: Vec<Member>) -> RoleShare {
    RoleShare {
        role,
        share: ppm(percent),
        members,
    }
}

/// The manifest in canonical form (members sorted and merged), as its id is computed over.
fn canonical(mut manifest: Manifest) -> Manifest {
    manifest.normalise();
    manifest
}

fn one(account: Address) -> Vec<Member> {
    vec![Member { account, weight: 1 }]
}

fn commercial(token: Address, price: Amount, derivative_percent: u32) -> Licence {
    Licence::Commercial {
        token,
        price_per_call: price,
        derivative_royalty: ppm(derivative_percent),
    }
}

struct Callable {
    id: AssetId,
    name: &'static str,
    price: Amount,
    popularity: u64,
}

pub fn run(store: &StoreArgs, args: DemoArgs) -> Result<(), String> {
    if store.database.is_some() {
        return Err("the demo always runs on a fresh embedded store; leave out --database".into());
    }
    let dir = store.data_dir.join(format!("demo-{}", now_ms()));
    let mut journal =
        Journal::open(Location::DataDir(dir.clone()), &mut |_, _| {}).map_err(|e| e.to_string())?;
    let mut dice = Dice(args.seed);
    let mut cast = Cast::default();
    println!("caravan demo — one day of paid AI calls, paid back to the people behind them");
    println!("store: {} (fresh)\n", dir.display());

    let usdc = Token {
        address: Address::from_label("caravan demo USDC"),
        symbol: "USDC".into(),
        decimals: 6,
    };
    let treasury = cast.person("caravan treasury");
    let mut events = vec![
        Event::Genesis(Genesis {
            treasury,
            protocol_fee: ppm(2),
        }),
        Event::TokenRegistered(usdc.clone()),
    ];

    // Two datasets built by a few hundred annotators each; some worked on both. Weights are the
    // number of accepted labels, long-tailed as real crowds are.
    let annotators: Vec<Address> = (0..480)
        .map(|i| cast.person(&format!("annotator-{i:03}")))
        .collect();
    let reviewers = [cast.person("reviewer-ana"), cast.person("reviewer-kofi")];
    let labels = |dice: &mut Dice, range: std::ops::Range<usize>| -> Vec<Member> {
        range
            .enumerate()
            .map(|(rank, i)| Member {
                account: annotators[i],
                weight: 1 + 2_400 / (rank as u64 + 3) + dice.below(40),
            })
            .collect()
    };
    let reviews = canonical(Manifest {
        kind: AssetKind::Dataset,
        name: "product-reviews-sentiment".into(),
        owner: cast.person("requester-acme-retail"),
        content: keccak256(b"product-reviews-sentiment items v1"),
        licence: commercial(usdc.address, 1_000, 15),
        parents: vec![],
        roles: vec![
            role(Role::DataContributor, 85, labels(&mut dice, 0..320)),
            role(
                Role::Developer,
                10,
                one(cast.person("requester-acme-retail")),
            ),
            role(
                Role::Validator,
                5,
                reviewers
                    .iter()
                    .map(|r| Member {
                        account: *r,
                        weight: 1,
                    })
                    .collect(),
            ),
        ],
    });
    let tickets = canonical(Manifest {
        kind: AssetKind::Dataset,
        name: "support-ticket-intents".into(),
        owner: cast.person("requester-helpwise"),
        content: keccak256(b"support-ticket-intents items v3"),
        licence: commercial(usdc.address, 1_000, 10),
        parents: vec![],
        roles: vec![
            role(Role::DataContributor, 90, labels(&mut dice, 200..480)),
            role(Role::Developer, 10, one(cast.person("requester-helpwise"))),
        ],
    });
    let base = canonical(Manifest {
        kind: AssetKind::Model,
        name: "review-sentiment-base".into(),
        owner: cast.person("ml-lab"),
        content: keccak256(b"review-sentiment-base weights"),
        licence: commercial(usdc.address, 4_000, 25),
        parents: vec![
            ParentEdge {
                parent: reviews.id(),
                kind: EdgeKind::TrainedOn,
                share: ppm(20),
            },
            ParentEdge {
                parent: tickets.id(),
                kind: EdgeKind::TrainedOn,
                share: ppm(10),
            },
        ],
        roles: vec![
            role(Role::Developer, 75, one(cast.person("ml-lab"))),
            role(
                Role::Validator,
                10,
                vec![
                    Member {
                        account: cast.person("validator-eval-guild"),
                        weight: 2,
                    },
                    Member {
                        account: cast.person("validator-benchmarks-org"),
                        weight: 1,
                    },
                ],
            ),
            role(Role::ComputeNode, 15, vec![]),
        ],
    });
    let retail = canonical(Manifest {
        kind: AssetKind::Model,
        name: "review-sentiment-retail".into(),
        owner: cast.person("retail-ai"),
        content: keccak256(b"review-sentiment-retail weights"),
        licence: commercial(usdc.address, 6_000, 20),
        parents: vec![ParentEdge {
            parent: base.id(),
            kind: EdgeKind::FinetunedFrom,
            share: ppm(25),
        }],
        roles: vec![
            role(Role::FineTuner, 80, one(cast.person("retail-ai"))),
            role(Role::ComputeNode, 20, vec![]),
        ],
    });
    let summarizer = canonical(Manifest {
        kind: AssetKind::Model,
        name: "summarizer-small".into(),
        owner: cast.person("open-lm-collective"),
        content: keccak256(b"summarizer-small weights"),
        licence: commercial(usdc.address, 2_000, 10),
        parents: vec![],
        roles: vec![
            role(Role::Developer, 85, one(cast.person("open-lm-collective"))),
            role(Role::ComputeNode, 15, vec![]),
        ],
    });
    let agent = canonical(Manifest {
        kind: AssetKind::Agent,
        name: "shop-assistant".into(),
        owner: cast.person("shopstack"),
        content: keccak256(b"shop-assistant program"),
        licence: commercial(usdc.address, 20_000, 0),
        parents: vec![
            ParentEdge {
                parent: retail.id(),
                kind: EdgeKind::ComposedOf,
                share: ppm(35),
            },
            ParentEdge {
                parent: summarizer.id(),
                kind: EdgeKind::ComposedOf,
                share: ppm(15),
            },
        ],
        roles: vec![
            role(Role::Developer, 85, one(cast.person("shopstack"))),
            role(Role::ComputeNode, 15, vec![]),
        ],
    });
    let callables = [
        Callable {
            id: agent.id(),
            name: "shop-assistant",
            price: 20_000,
            popularity: 55,
        },
        Callable {
            id: retail.id(),
            name: "review-sentiment-retail",
            price: 6_000,
            popularity: 25,
        },
        Callable {
            id: base.id(),
            name: "review-sentiment-base",
            price: 4_000,
            popularity: 12,
        },
        Callable {
            id: summarizer.id(),
            name: "summarizer-small",
            price: 2_000,
            popularity: 8,
        },
    ];
    let manifests = [reviews, tickets, base, retail, summarizer, agent];
    events.extend(manifests.iter().cloned().map(Event::AssetRegistered));
    let apps = [
        cast.person("app-storefront"),
        cast.person("app-helpdesk-saas"),
        cast.person("app-mobile-shopper"),
    ];
    let app_traffic = [50, 30, 20];
    for app in apps {
        events.push(Event::Deposited {
            payer: app,
            token: usdc.address,
            amount: 2_000 * 1_000_000,
        });
    }
    let nodes = [
        cast.person("node-frankfurt"),
        cast.person("node-ohio"),
        cast.person("node-singapore"),
    ];
    refuse_nothing(journal.submit(events).map_err(|e| e.to_string())?)?;

    print_lineage(journal.economy(), &manifests);

    // A day of calls, busier in the afternoon, each served by the node whose region is awake.
    let day_start = (now_ms() / 86_400_000 - 1) * 86_400_000;
    let hourly: Vec<u64> = (0..24)
        .map(|h: u64| {
            2 + if (8..22).contains(&h) {
                6 + (h.min(22 - h + 8))
            } else {
                0
            }
        })
        .collect();
    let mut calls: Vec<(u64, usize, usize, usize)> = (0..args.calls)
        .map(|_| {
            let hour = dice.pick(&hourly) as u64;
            let at = day_start + hour * 3_600_000 + dice.below(3_600_000);
            let node = match hour {
                6..=13 => dice.pick(&[6, 2, 1]),
                14..=21 => dice.pick(&[2, 6, 1]),
                _ => dice.pick(&[1, 2, 6]),
            };
            (
                at,
                dice.pick(&callables.iter().map(|c| c.popularity).collect::<Vec<_>>()),
                dice.pick(&app_traffic),
                node,
            )
        })
        .collect();
    calls.sort_unstable();
    let bar = progress(calls.len() as u64, "recording calls");
    let mut per_asset: BTreeMap<&str, (u64, Amount)> = BTreeMap::new();
    for chunk in calls.chunks(2_000) {
        let at_ms = chunk.last().expect("chunks are non-empty").0;
        let batch = chunk
            .iter()
            .map(|(_, target, app, node)| {
                let callable = &callables[*target];
                let entry = per_asset.entry(callable.name).or_default();
                entry.0 += 1;
                entry.1 += callable.price;
                Event::UsageRecorded(Usage {
                    asset: callable.id,
                    payer: apps[*app],
                    token: usdc.address,
                    amount: callable.price,
                    calls: 1,
                    node: nodes[*node],
                })
            })
            .collect();
        let (submitted, ticket) = journal.submit_pipelined(batch, at_ms);
        journal.settle(ticket).map_err(|e| e.to_string())?;
        refuse_nothing(submitted)?;
        bar.inc(chunk.len() as u64);
    }
    bar.finish_and_clear();
    let charged: Amount = per_asset.values().map(|(_, a)| a).sum();
    let mut t = table(&["asset called", "calls", "charged"], &[1, 2]);
    for (name, (count, total)) in &per_asset {
        t.add_row(vec![
            name.to_string(),
            count.to_string(),
            usdc.format(*total),
        ]);
    }
    t.add_row(vec![
        "total".to_string(),
        calls.len().to_string(),
        usdc.format(charged),
    ]);
    println!("a day of paid calls from 3 apps, served by 3 nodes\n{t}\n");

    let (outcome, bundle) = journal.close_epoch().map_err(|e| e.to_string())?;
    let economy = journal.economy();
    print_flow(economy, &bundle, &manifests);
    println!("\nwho was paid, by role");
    print_close_summary(economy, &bundle);
    print_earners(economy, &bundle, &cast, &manifests);

    let fees: Amount = bundle.treasury_fees.iter().map(|f| f.amount).sum();
    let people: Amount = bundle
        .payouts
        .iter()
        .filter(|p| matches!(p.to, PayoutTo::Member { .. } | PayoutTo::Owner { .. }))
        .map(|p| p.amount)
        .sum();
    let carried: Amount = bundle
        .payouts
        .iter()
        .filter(|p| p.to == PayoutTo::Carry)
        .map(|p| p.amount)
        .sum();
    println!(
        "\nconservation: charged {} = protocol fee {} + paid to people {} + carried {}  ({})",
        usdc.format(charged),
        usdc.format(fees),
        usdc.format(people),
        usdc.format(carried),
        if fees + people + carried == charged {
            "exact to the last base unit"
        } else {
            "MISMATCH"
        }
    );

    println!(
        "\nsettlement root of epoch {}: {}  ({} leaves, one per person and token)",
        outcome.epoch,
        outcome.root,
        outcome.leaves.len()
    );
    let annotator = bundle
        .leaves
        .iter()
        .enumerate()
        .filter(|(_, l)| cast.name(&l.account).starts_with("annotator"))
        .max_by_key(|(_, l)| l.cumulative)
        .ok_or("no annotator was paid")?;
    let (index, leaf) = annotator;
    let proof = outcome.tree.proof(index);
    println!(
        "\nproof for {} ({}), who may claim {}:",
        cast.name(&leaf.account),
        leaf.account,
        usdc.format(leaf.cumulative)
    );
    let json = serde_json::json!({ "account": leaf.account, "token": leaf.token, "cumulative": leaf.cumulative.to_string(), "proof": proof });
    println!("{}", serde_json::to_string_pretty(&json).expect("json"));
    println!(
        "verifies against the root (as OpenZeppelin's MerkleProof would): {}",
        verify_proof(&outcome.root, leaf, &proof)
    );
    println!("\nexplore it:");
    let dir_arg = dir.display();
    println!("  caravan --data-dir {dir_arg} asset list");
    println!(
        "  caravan --data-dir {dir_arg} epoch show 1 --account {} --out epoch-1.json",
        leaf.account
    );
    println!("  caravan epoch verify-bundle epoch-1.json");
    println!("  caravan --data-dir {dir_arg} log verify");
    Ok(())
}

fn refuse_nothing(submitted: caravan_store::Submitted) -> Result<(), String> {
    match submitted.refused.first() {
        Some((index, why)) => Err(format!("demo event {index} was refused: {why}")),
        None => Ok(()),
    }
}

fn print_lineage(economy: &Economy, manifests: &[Manifest]) {
    let name_of = |id: &AssetId| {
        manifests
            .iter()
            .find(|m| m.id() == *id)
            .map(|m| m.name.clone())
            .unwrap_or_default()
    };
    let mut t = table(
        &[
            "asset",
            "kind",
            "parents (edge, royalty share)",
            "price per call",
            "people in its roles",
        ],
        &[3, 4],
    );
    for manifest in manifests {
        let parents: Vec<String> = manifest
            .parents
            .iter()
            .map(|e| format!("{} ({}, {})", name_of(&e.parent), e.kind.name(), e.share))
            .collect();
        let price = match &manifest.licence {
            Licence::Commercial {
                token,
                price_per_call,
                ..
            } => crate::present::amount(economy, token, *price_per_call),
            _ => "—".into(),
        };
        let people: usize = manifest.roles.iter().map(|r| r.members.len()).sum();
        t.add_row(vec![
            manifest.name.clone(),
            manifest.kind.name().into(),
            if parents.is_empty() {
                "—".into()
            } else {
                parents.join("\n")
            },
            price,
            people.to_string(),
        ]);
    }
    println!("the lineage\n{t}\n");
}

fn print_flow(economy: &Economy, bundle: &epoch::EpochBundle, manifests: &[Manifest]) {
    #[derive(Default)]
    struct Flow {
        accrued: Amount,
        received: Amount,
        sent: Amount,
        people: Amount,
        carried: Amount,
    }
    let mut flows: BTreeMap<AssetId, Flow> = BTreeMap::new();
    for accrual in &bundle.accruals {
        flows.entry(accrual.asset).or_default().accrued += accrual.amount;
    }
    for payout in &bundle.payouts {
        match &payout.to {
            PayoutTo::Parent { parent, .. } => {
                flows.entry(payout.asset).or_default().sent += payout.amount;
                flows.entry(*parent).or_default().received += payout.amount;
            }
            PayoutTo::Carry => flows.entry(payout.asset).or_default().carried += payout.amount,
            _ => flows.entry(payout.asset).or_default().people += payout.amount,
        }
    }
    let token = bundle.tokens.first().map(|t| t.address).unwrap_or_default();
    let show = |amount: Amount| crate::present::amount(economy, &token, amount);
    let mut t = table(
        &[
            "asset",
            "own revenue (after fee)",
            "from children",
            "to parents",
            "to its people",
            "carried",
        ],
        &[1, 2, 3, 4, 5],
    );
    for manifest in manifests.iter().rev() {
        let flow = flows.remove(&manifest.id()).unwrap_or_default();
        t.add_row(vec![
            manifest.name.clone(),
            show(flow.accrued),
            show(flow.received),
            show(flow.sent),
            show(flow.people),
            show(flow.carried),
        ]);
    }
    println!("how the money moved up the lineage at epoch close (children first)\n{t}");
}

fn print_earners(
    economy: &Economy,
    bundle: &epoch::EpochBundle,
    cast: &Cast,
    manifests: &[Manifest],
) {
    let name_of = |id: &AssetId| {
        manifests
            .iter()
            .find(|m| m.id() == *id)
            .map(|m| m.name.clone())
            .unwrap_or_default()
    };
    let mut earners: BTreeMap<Address, (Amount, BTreeMap<String, Amount>)> = BTreeMap::new();
    for payout in &bundle.payouts {
        let (account, why) = match &payout.to {
            PayoutTo::Member { account, role } => (
                account,
                format!("{} of {}", role.name(), name_of(&payout.asset)),
            ),
            PayoutTo::Owner { account, role } => (
                account,
                format!(
                    "owner of {}{}",
                    name_of(&payout.asset),
                    role.map(|r| format!(" (no {} yet)", r.name()))
                        .unwrap_or_default()
                ),
            ),
            _ => continue,
        };
        let entry = earners.entry(*account).or_default();
        entry.0 += payout.amount;
        *entry.1.entry(why).or_default() += payout.amount;
    }
    let token = bundle.tokens.first().map(|t| t.address).unwrap_or_default();
    let show = |amount: Amount| crate::present::amount(economy, &token, amount);
    let mut ranked: Vec<_> = earners.iter().collect();
    ranked.sort_by_key(|(address, (total, _))| (std::cmp::Reverse(*total), **address));
    let mut t = table(&["who", "earned", "why"], &[1]);
    for (address, (total, reasons)) in ranked.iter().take(14) {
        let why: Vec<String> = reasons
            .iter()
            .map(|(reason, amount)| format!("{reason}: {}", show(*amount)))
            .collect();
        t.add_row(vec![cast.name(address), show(*total), why.join("\n")]);
    }
    println!(
        "\nwho earned what, and why (top 14 of {})\n{t}",
        ranked.len()
    );
    let annotators: Vec<Amount> = ranked
        .iter()
        .filter(|(a, _)| cast.name(a).starts_with("annotator"))
        .map(|(_, (total, _))| *total)
        .collect();
    if let (Some(most), Some(least)) = (annotators.first(), annotators.last()) {
        let sum: Amount = annotators.iter().sum();
        println!(
            "{} annotators earned {} together: from {} (most accepted labels) down to {}; the median earned {}",
            annotators.len(),
            show(sum),
            show(*most),
            show(*least),
            show(annotators[annotators.len() / 2])
        );
    }
}
