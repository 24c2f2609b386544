//! (b) Epoch close at scale: 10,000 assets, 200,000 contributors, millions of calls — in memory,
//! and durably through the store with the bundle written.

use std::time::Instant;

use caravan_core::*;
use caravan_store::{Journal, Location};

use super::ingest::{BATCH, IN_FLIGHT};
use crate::present::progress;

/// A dataset of `contributors` (weights spread 1..100) keeping 10% for the nodes that serve it.
pub fn bench_dataset(i: usize, contributors: &[Address]) -> Manifest {
    let mut manifest = Manifest {
        kind: AssetKind::Dataset,
        name: format!("bench dataset {i}"),
        owner: Address::from_label(&format!("bench owner {i}")),
        content: keccak256(&i.to_be_bytes()),
        licence: Licence::OpenUse,
        parents: vec![],
        roles: vec![
            RoleShare {
                role: Role::DataContributor,
                share: Ppm::new(900_000).expect("90%"),
                members: contributors
                    .iter()
                    .enumerate()
                    .map(|(k, a)| Member {
                        account: *a,
                        weight: 1 + (k as u64 * 7919) % 100,
                    })
                    .collect(),
            },
            RoleShare {
                role: Role::ComputeNode,
                share: Ppm::new(100_000).expect("10%"),
                members: vec![],
            },
        ],
    };
    manifest.normalise();
    manifest
}

/// The lineage and the callers of the close benchmark.
pub struct CloseWorkload {
    /// Genesis, the token, every asset (parents first) and the payers' deposits.
    pub setup: Vec<Event>,
    callable: Vec<AssetId>,
    payers: Vec<Address>,
    nodes: Vec<Address>,
    token: Address,
}

impl CloseWorkload {
    /// `assets` assets of which a fifth are datasets sharing `contributors` people; the rest are
    /// models trained on datasets or fine-tuned from earlier models (a third of their parents'
    /// picks), and agents composing models.
    pub fn new(token: &Token, assets: usize, contributors: usize) -> CloseWorkload {
        let mut setup = vec![
            Event::Genesis(Genesis {
                treasury: Address::from_label("treasury"),
                protocol_fee: Ppm::new(20_000).expect("2%"),
            }),
            Event::TokenRegistered(token.clone()),
        ];
        let datasets = assets / 5;
        let per_dataset = contributors / datasets;
        let mut ids = Vec::with_capacity(assets);
        let mut kinds = Vec::with_capacity(assets);
        for i in 0..assets {
            let manifest = if i < datasets {
                let members: Vec<Address> = (0..per_dataset)
                    .map(|k| Address::from_label(&format!("contributor {}", i * per_dataset + k)))
                    .collect();
                bench_dataset(i, &members)
            } else {
                let kind = if i % 4 == 0 {
                    AssetKind::Agent
                } else {
                    AssetKind::Model
                };
                let mut parents: Vec<ParentEdge> = Vec::new();
                for salt in 0..3 {
                    let candidate = (i.wrapping_mul(2_654_435_761).wrapping_add(salt * 40_503)) % i;
                    let edge = EdgeKind::ALL
                        .iter()
                        .copied()
                        .find(|e| e.allows(kind, kinds[candidate]));
                    if let Some(edge) = edge
                        && !parents.iter().any(|p| p.parent == ids[candidate])
                    {
                        parents.push(ParentEdge {
                            parent: ids[candidate],
                            kind: edge,
                            share: Ppm::new(150_000).expect("15%"),
                        });
                    }
                }
                let developer = Member {
                    account: Address::from_label(&format!("developer {i}")),
                    weight: 1,
                };
                Manifest {
                    kind,
                    name: format!("bench {} {i}", kind.name()),
                    owner: developer.account,
                    content: keccak256(&i.to_be_bytes()),
                    licence: Licence::OpenUse,
                    parents,
                    roles: vec![
                        RoleShare {
                            role: Role::Developer,
                            share: Ppm::new(800_000).expect("80%"),
                            members: vec![developer],
                        },
                        RoleShare {
                            role: Role::ComputeNode,
                            share: Ppm::new(200_000).expect("20%"),
                            members: vec![],
                        },
                    ],
                }
            };
            ids.push(manifest.id());
            kinds.push(manifest.kind);
            setup.push(Event::AssetRegistered(manifest));
        }
        let payers: Vec<Address> = (0..64)
            .map(|i| Address::from_label(&format!("payer {i}")))
            .collect();
        setup.extend(payers.iter().map(|payer| Event::Deposited {
            payer: *payer,
            token: token.address,
            amount: u64::MAX as u128 * 1_000,
        }));
        CloseWorkload {
            setup,
            callable: ids.split_off(datasets),
            payers,
            nodes: (0..16)
                .map(|i| Address::from_label(&format!("node {i}")))
                .collect(),
            token: token.address,
        }
    }

    /// The `n`-th paid call: spread over every model and agent, 64 payers and 16 nodes.
    pub fn usage(&self, n: usize) -> Event {
        Event::UsageRecorded(Usage {
            asset: self.callable[n.wrapping_mul(2_654_435_761) % self.callable.len()],
            payer: self.payers[n % self.payers.len()],
            token: self.token,
            amount: 1_000 + (n % 1_013) as u128,
            calls: 1,
            node: self.nodes[n % self.nodes.len()],
        })
    }
}

/// What a close produced and how long it took.
pub struct CloseFigures {
    pub seconds: f64,
    pub payouts: usize,
    pub leaves: usize,
}

/// Records `calls` usage events in memory and times the close after a tenth of them and after
/// all of them: (after a tenth, after all).
pub fn measure_close(workload: &CloseWorkload, calls: u64) -> (f64, CloseFigures) {
    let mut economy = Economy::default();
    for event in &workload.setup {
        economy
            .append(event.clone(), 0)
            .expect("bench events are valid");
    }
    let bar = progress(calls, "recording usage");
    let mut close_tenth = 0.0;
    for n in 0..calls as usize {
        economy
            .append(workload.usage(n), 0)
            .expect("bench usage is valid");
        if n + 1 == calls as usize / 10 {
            let mut early = economy.clone();
            let started = Instant::now();
            early.close_epoch(1).expect("genesis exists");
            close_tenth = started.elapsed().as_secs_f64();
        }
        if n % 65_536 == 0 {
            bar.set_position(n as u64);
        }
    }
    bar.finish_and_clear();
    let started = Instant::now();
    let (outcome, _, _) = economy.close_epoch(1).expect("genesis exists");
    let seconds = started.elapsed().as_secs_f64();
    (
        close_tenth,
        CloseFigures {
            seconds,
            payouts: outcome.payouts.len(),
            leaves: outcome.leaves.len(),
        },
    )
}

/// Writes the workload and `calls` usage events into the store at `location`, then times a
/// durable close: propagation, the Merkle tree, the bundle serialised and committed with the
/// `EpochClosed` event. Returns the figures and the bundle's size in bytes.
pub fn measure_durable_close(
    location: &Location,
    workload: &CloseWorkload,
    calls: u64,
) -> Result<(CloseFigures, usize), String> {
    let mut journal = Journal::open(location.clone(), &mut |_, _| {}).map_err(|e| e.to_string())?;
    journal
        .submit(workload.setup.clone())
        .map_err(|e| e.to_string())?;
    let bar = progress(calls, "storing usage");
    let mut pending = std::collections::VecDeque::new();
    let mut sent = 0usize;
    while sent < calls as usize {
        let count = BATCH.min(calls as usize - sent);
        let (_, ticket) = journal.submit_pipelined(
            (sent..sent + count).map(|n| workload.usage(n)).collect(),
            caravan_store::now_ms(),
        );
        pending.push_back(ticket);
        if pending.len() >= IN_FLIGHT {
            journal
                .settle(pending.pop_front().expect("non-empty"))
                .map_err(|e| e.to_string())?;
        }
        sent += count;
        bar.set_position(sent as u64);
    }
    while let Some(ticket) = pending.pop_front() {
        journal.settle(ticket).map_err(|e| e.to_string())?;
    }
    bar.finish_and_clear();
    let started = Instant::now();
    let (outcome, bundle) = journal.close_epoch().map_err(|e| e.to_string())?;
    let seconds = started.elapsed().as_secs_f64();
    let bundle_bytes = serde_json::to_vec(&bundle).map(|b| b.len()).unwrap_or(0);
    Ok((
        CloseFigures {
            seconds,
            payouts: outcome.payouts.len(),
            leaves: outcome.leaves.len(),
        },
        bundle_bytes,
    ))
}
