//! The benchmark's economies: datasets with many contributors and a lineage of models and
//! agents over them, with the calls that pay them.

use caravan_core::*;

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
