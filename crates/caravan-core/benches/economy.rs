//! Criterion micro-benchmarks of the core's hot paths. The at-scale figures come from
//! `caravan bench economy`; these track the per-operation costs behind them.

use std::hint::black_box;

use caravan_core::money::split_largest_remainder;
use caravan_core::*;
use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};

fn token() -> Token {
    Token {
        address: Address::from_label("bench token"),
        symbol: "TKN".into(),
        decimals: 6,
    }
}

fn economy_with_dataset(contributors: usize) -> (Economy, AssetId) {
    let mut economy = Economy::default();
    economy
        .append(
            Event::Genesis(Genesis {
                treasury: Address::from_label("treasury"),
                protocol_fee: Ppm::new(20_000).unwrap(),
            }),
            0,
        )
        .unwrap();
    economy.append(Event::TokenRegistered(token()), 0).unwrap();
    let mut manifest = Manifest {
        kind: AssetKind::Dataset,
        name: "bench".into(),
        owner: Address::from_label("owner"),
        content: keccak256(b"bench"),
        licence: Licence::OpenUse,
        parents: vec![],
        roles: vec![RoleShare {
            role: Role::DataContributor,
            share: Ppm::ONE,
            members: (0..contributors)
                .map(|i| Member {
                    account: Address::from_label(&format!("c{i}")),
                    weight: 1 + i as u64 % 50,
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
                payer: Address::from_label("payer"),
                token: token().address,
                amount: u64::MAX as u128,
            },
            0,
        )
        .unwrap();
    (economy, id)
}

fn benches(c: &mut Criterion) {
    let weights: Vec<u128> = (0..300).map(|i| 1 + (i * 7_919) % 1_000).collect();
    c.bench_function("split 1e12 over 300 weights", |b| {
        b.iter(|| split_largest_remainder(black_box(1_000_000_000_000), black_box(&weights)))
    });

    let (economy, id) = economy_with_dataset(300);
    let usage = Event::UsageRecorded(Usage {
        asset: id,
        payer: Address::from_label("payer"),
        token: token().address,
        amount: 1_000,
        calls: 1,
        node: Address::from_label("node"),
    });
    let mut group = c.benchmark_group("usage");
    group.throughput(Throughput::Elements(1_000));
    group.bench_function("append 1000 usage events (validate, apply, seal)", |b| {
        b.iter_batched(
            || economy.clone(),
            |mut economy| {
                for _ in 0..1_000 {
                    economy.append(usage.clone(), 0).unwrap();
                }
                economy
            },
            BatchSize::LargeInput,
        )
    });
    group.finish();

    c.bench_function("close an epoch over 300 contributors", |b| {
        b.iter_batched(
            || {
                let mut economy = economy.clone();
                economy.append(usage.clone(), 0).unwrap();
                economy
            },
            |mut economy| economy.close_epoch(1).unwrap().0.root,
            BatchSize::LargeInput,
        )
    });

    let leaves: Vec<Leaf> = (0..100_000u64)
        .map(|i| Leaf {
            account: Address::from_label(&i.to_string()),
            token: token().address,
            cumulative: i as u128 + 1,
        })
        .collect();
    let mut group = c.benchmark_group("merkle");
    group.throughput(Throughput::Elements(leaves.len() as u64));
    group.sample_size(10);
    group.bench_function("build over 100k leaves", |b| {
        b.iter(|| MerkleTree::build(black_box(&leaves)).root())
    });
    group.finish();

    // A gateway resolves the model a call names on every call.
    let mut lineage = caravan_core::lineage::Lineage::default();
    for i in 0..100_000u32 {
        lineage
            .register(Manifest {
                kind: AssetKind::Dataset,
                name: format!("dataset {i}"),
                owner: Address::from_label("owner"),
                content: keccak256(&i.to_be_bytes()),
                licence: Licence::OpenUse,
                parents: vec![],
                roles: vec![],
            })
            .unwrap();
    }
    c.bench_function("find an asset by name among 100k", |b| {
        b.iter(|| lineage.named(black_box("dataset 77777")).count())
    });
}

criterion_group!(economy, benches);
criterion_main!(economy);
