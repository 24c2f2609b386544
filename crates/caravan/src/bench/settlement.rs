//! `caravan bench settlement`: gas of posting a root and of claims at tree depth 22 on the
//! embedded chain, and an epoch settled end to end (close, post, 1,000 claims), timed.

use std::time::Instant;

use caravan_chain::anvil::LocalAnvil;
use caravan_chain::settlement::{EpochRoot, Settlement};
use caravan_core::*;
use clap::Args;

use super::served::dev_token;
use crate::present::{progress, table};

#[derive(Args)]
pub struct SettlementArgs {
    /// A smaller tree (depth 16) and 100 claims: a quick check that the benchmark runs.
    #[arg(long)]
    quick: bool,
    /// Directory for the scratch chains (a fresh temporary one inside it per measurement).
    #[arg(long, default_value = ".")]
    scratch_dir: std::path::PathBuf,
    /// Also measure gas over JSON-RPC on a fresh anvil this benchmark starts from the given
    /// binary (`scripts/anvil/install.sh` installs it and prints its path).
    #[arg(long)]
    anvil: Option<std::path::PathBuf>,
}

/// `count` leaves of distinct accounts in `token`, `bump` added to leaf 0. The accounts look
/// like real ones (20 bytes of hash, nearly all non-zero), because a claim's calldata costs
/// 16 gas per non-zero byte and 4 per zero byte: an address full of zeros would flatter the
/// claim's gas.
fn leaves(count: usize, token: Address, bump: u128) -> Vec<Leaf> {
    (0..count)
        .map(|i| {
            let digest = keccak256(&(i as u64).to_be_bytes());
            let mut account = [0u8; 20];
            account.copy_from_slice(&digest.0[12..]);
            Leaf {
                account: Address(account),
                token,
                cumulative: 1_000 + (i as u128 % 977) + if i == 0 { bump } else { 0 },
            }
        })
        .collect()
}

struct Gas {
    depth: usize,
    leaves: usize,
    post: u64,
    first_claim: u64,
    repeat_claim: u64,
}

/// Posts epochs over `count` leaves (the second raises leaf 0) and claims leaf 0 twice.
fn measure_gas(mut chain: Settlement, count: usize) -> Result<Gas, String> {
    let token = Address(chain.deployment().token.into_array());
    let bar = progress(2, "building trees");
    let first = leaves(count, token, 0);
    let tree1 = MerkleTree::build(&first);
    bar.inc(1);
    let second = leaves(count, token, 500);
    let tree2 = MerkleTree::build(&second);
    bar.finish_and_clear();
    let total: u128 = second.iter().map(|l| l.cumulative).sum();
    chain.fund(total, 1_000).map_err(|e| e.to_string())?;
    let epoch = |epoch, tree: &MerkleTree, leaves| EpochRoot {
        epoch,
        root: tree.root(),
        leaves,
    };
    let (epoch1, epoch2) = (epoch(1, &tree1, &first[..]), epoch(2, &tree2, &second[..]));
    chain.post(epoch1, None, 1_000).map_err(|e| e.to_string())?;
    chain.activate(1_000).map_err(|e| e.to_string())?;
    let proof1 = tree1.proof(0);
    let first_claim = chain
        .claim(&first[0], &proof1, tree1.root(), 1_001)
        .map_err(|e| e.to_string())?
        .gas_used;
    // Steady state: a third epoch's post activates the second one, as every post does.
    chain
        .post(epoch2, Some(epoch1), 1_002)
        .map_err(|e| e.to_string())?;
    let post = chain
        .post(epoch(3, &tree2, &second[..]), Some(epoch2), 1_003)
        .map_err(|e| e.to_string())?
        .gas_used;
    let repeat_claim = chain
        .claim(&second[0], &tree2.proof(0), tree2.root(), 1_004)
        .map_err(|e| e.to_string())?
        .gas_used;
    Ok(Gas {
        depth: proof1.len(),
        leaves: count,
        post,
        first_claim,
        repeat_claim,
    })
}

struct EndToEnd {
    close: f64,
    post: f64,
    claims: f64,
    count: usize,
}

/// An economy whose dataset has `count` contributors, one epoch closed, posted, and every
/// contributor claiming.
fn measure_end_to_end(scratch: &std::path::Path, count: usize) -> Result<EndToEnd, String> {
    let mut economy = Economy::default();
    let token = dev_token();
    let members: Vec<Member> = (0..count)
        .map(|i| Member {
            account: Address::from_label(&format!("bench contributor {i}")),
            weight: 1 + i as u64 % 5,
        })
        .collect();
    let mut manifest = Manifest {
        kind: AssetKind::Dataset,
        name: "bench dataset".into(),
        owner: Address::from_label("bench owner"),
        content: keccak256(b"bench dataset"),
        licence: Licence::Commercial {
            token,
            price_per_call: 1,
            derivative_royalty: Ppm::ZERO,
        },
        parents: Vec::new(),
        roles: vec![RoleShare {
            role: Role::DataContributor,
            share: Ppm::ONE,
            members,
        }],
    };
    manifest.normalise();
    let asset = manifest.id();
    let payer = Address::from_label("bench payer");
    let events = vec![
        Event::Genesis(Genesis {
            treasury: Address::from_label("bench treasury"),
            protocol_fee: Ppm::ZERO,
        }),
        Event::TokenRegistered(Token {
            address: token,
            symbol: "USDC".into(),
            decimals: 6,
        }),
        Event::AssetRegistered(manifest),
        Event::Deposited {
            payer,
            token,
            amount: 1_000_000_000,
        },
        Event::UsageRecorded(Usage {
            asset,
            payer,
            token,
            amount: 500_000_000,
            calls: 10_000,
            node: Address::from_label("bench node"),
        }),
    ];
    for event in events {
        economy.append(event, 0).map_err(|e| e.to_string())?;
    }
    let started = Instant::now();
    let (outcome, envelope, _) = economy.close_epoch(0).map_err(|e| e.to_string())?;
    let bundle = economy.epoch_bundle(&outcome, envelope.seq, envelope.hash, 0);
    let close = started.elapsed().as_secs_f64();

    let dir = tempfile::tempdir_in(scratch).map_err(|e| e.to_string())?;
    let mut chain = Settlement::open_embedded(dir.path(), 0, 1_000).map_err(|e| e.to_string())?;
    let started = Instant::now();
    let promised: u128 = bundle.leaves.iter().map(|l| l.cumulative).sum();
    chain.fund(promised, 1_000).map_err(|e| e.to_string())?;
    chain
        .post((&bundle).into(), None, 1_000)
        .map_err(|e| e.to_string())?;
    chain.activate(1_000).map_err(|e| e.to_string())?;
    let post = started.elapsed().as_secs_f64();

    let bar = progress(outcome.leaves.len() as u64, "claiming");
    let started = Instant::now();
    for (index, leaf) in outcome.leaves.iter().enumerate() {
        chain
            .claim(leaf, &outcome.tree.proof(index), bundle.root, 1_001)
            .map_err(|e| e.to_string())?;
        bar.inc(1);
    }
    let claims = started.elapsed().as_secs_f64();
    bar.finish_and_clear();
    let mut paid = 0;
    for leaf in &outcome.leaves {
        paid += chain.balance(leaf.account).map_err(|e| e.to_string())?;
    }
    if paid != promised {
        return Err(format!("claims paid {paid}, the epoch promised {promised}"));
    }
    Ok(EndToEnd {
        close,
        post,
        claims,
        count: outcome.leaves.len(),
    })
}

pub fn settlement(args: SettlementArgs) -> Result<(), String> {
    // A power of two, so every leaf sits at the same depth: 2^22 leaves (4.2 million) give the
    // depth-22 proofs that ≈3.2 million leaves give their deepest leaves.
    let (leaf_count, claimants) = if args.quick {
        (1 << 16, 100)
    } else {
        (1 << 22, 1_000)
    };
    let scratch = tempfile::tempdir_in(&args.scratch_dir).map_err(|e| e.to_string())?;
    let embedded =
        Settlement::open_embedded(scratch.path(), 0, 1_000).map_err(|e| e.to_string())?;
    let gas = measure_gas(embedded, leaf_count)?;
    let rpc_gas = match &args.anvil {
        Some(binary) => Some(measure_gas_on_anvil(binary, &args.scratch_dir, leaf_count)?),
        None => None,
    };
    let e2e = measure_end_to_end(&args.scratch_dir, claimants)?;
    let deposits = match &args.anvil {
        Some(binary) => [
            std::time::Duration::from_secs(2),
            std::time::Duration::from_millis(250),
        ]
        .into_iter()
        .map(|every| measure_deposit_latency(binary, &args.scratch_dir, every, 9))
        .collect::<Result<Vec<_>, _>>()?,
        None => Vec::new(),
    };
    let rpc = |value: fn(&Gas) -> u64| {
        rpc_gas
            .as_ref()
            .map_or("—".to_owned(), |g| format!("{} gas", value(g)))
    };
    let mut t = table(
        &[
            "figure",
            "workload",
            "embedded (revm)",
            "JSON-RPC (anvil)",
            "target",
        ],
        &[2, 3],
    );
    t.add_row(vec![
        "post a root".into(),
        "steady state: the post also activates the previous root; one token".into(),
        format!("{} gas", gas.post),
        rpc(|g| g.post),
        "≤ 45,000".into(),
    ]);
    t.add_row(vec![
        format!("first claim, depth {}", gas.depth),
        format!(
            "{} leaves; the account's claimed amount and token balance start at zero",
            gas.leaves
        ),
        format!("{} gas", gas.first_claim),
        rpc(|g| g.first_claim),
        "≤ 96,000".into(),
    ]);
    t.add_row(vec![
        format!("repeat claim, depth {}", gas.depth),
        "the same account after the next epoch raised its cumulative amount".into(),
        format!("{} gas", gas.repeat_claim),
        rpc(|g| g.repeat_claim),
        "≤ 61,000".into(),
    ]);
    t.add_row(vec![
        "epoch end to end".into(),
        format!(
            "close ({:.3} s), fund + post + activate ({:.3} s), {} claims each journaled durably ({:.3} s)",
            e2e.close, e2e.post, e2e.count, e2e.claims
        ),
        format!("{:.3} s", e2e.close + e2e.post + e2e.claims),
        "—".into(),
        "—".into(),
    ]);
    for latency in &deposits {
        let millis = latency.millis.clone();
        let longest = millis.iter().copied().fold(0.0, f64::max);
        t.add_row(vec![
            format!(
                "deposit to spendable, following every {:?}",
                latency.follow_every
            ),
            format!(
                "{} deposits into the vault on anvil at moments spread over the follower's round; from each one's receipt (mined, 1 confirmation) to the payer's balance holding it; longest {longest:.0} ms",
                millis.len()
            ),
            "—".into(),
            format!("{:.0} ms median", super::median(millis)),
            "—".into(),
        ]);
    }
    println!(
        "caravan bench settlement{}",
        if args.quick {
            " --quick (depth 16, NOT the measurement)"
        } else {
            ""
        }
    );
    println!("{t}");
    println!("gas_post_root_embedded: {}", gas.post);
    println!(
        "gas_claim_first_depth{}_embedded: {}",
        gas.depth, gas.first_claim
    );
    println!(
        "gas_claim_repeat_depth{}_embedded: {}",
        gas.depth, gas.repeat_claim
    );
    if let Some(g) = &rpc_gas {
        println!("gas_post_root_rpc: {}", g.post);
        println!("gas_claim_first_depth{}_rpc: {}", g.depth, g.first_claim);
        println!("gas_claim_repeat_depth{}_rpc: {}", g.depth, g.repeat_claim);
    }
    for latency in &deposits {
        println!(
            "deposit_to_spendable_ms_following_every_{}ms: {:.0}",
            latency.follow_every.as_millis(),
            super::median(latency.millis.clone())
        );
    }
    println!(
        "settle_epoch_{}_claims_s: {:.3}",
        e2e.count,
        e2e.close + e2e.post + e2e.claims
    );
    Ok(())
}

/// Starts anvil on a free loopback port, measures the same gas over JSON-RPC, stops it.
fn measure_gas_on_anvil(
    binary: &std::path::Path,
    scratch: &std::path::Path,
    count: usize,
) -> Result<Gas, String> {
    let anvil = LocalAnvil::start(binary).map_err(|e| e.to_string())?;
    let rpc = anvil.connect().map_err(|e| e.to_string())?;
    let records = tempfile::tempdir_in(scratch).map_err(|e| e.to_string())?;
    let chain = Settlement::open(records.path(), Box::new(rpc), 0, 0).map_err(|e| e.to_string())?;
    measure_gas(chain, count)
}

/// How long deposits on anvil took to become spendable with a follow interval.
struct DepositLatency {
    follow_every: std::time::Duration,
    /// Milliseconds from each deposit's receipt (its block mined, one confirmation) to the
    /// payer's balance holding it, in deposit order.
    millis: Vec<f64>,
}

/// Starts anvil, deploys caravan's contracts there and follows its vault as `caravan serve`
/// does (every `follow_every`, one confirmation), then makes `count` deposits one after another,
/// each at another moment of the follower's round, and times each from its receipt to the
/// payer's spendable balance.
fn measure_deposit_latency(
    binary: &std::path::Path,
    scratch: &std::path::Path,
    follow_every: std::time::Duration,
    count: usize,
) -> Result<DepositLatency, String> {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, Ordering};

    use caravan_chain::anvil::{ANVIL_CHAIN_ID, ANVIL_DEV_KEY};
    use caravan_node::deposits::DepositFollower;
    use caravan_node::settlement::{Chains, RpcConfig, chains_dir};
    use caravan_store::{Journal, Location, SharedJournal};

    const KEY_ENV: &str = "CARAVAN_BENCH_ANVIL_KEY";
    let anvil = LocalAnvil::start(binary).map_err(|e| e.to_string())?;
    let dir = tempfile::tempdir_in(scratch).map_err(|e| e.to_string())?;
    let mut journal = Journal::open(Location::DataDir(dir.path().join("data")), &mut |_, _| {})
        .map_err(|e| e.to_string())?;
    journal
        .submit(vec![
            Event::Genesis(Genesis {
                treasury: Address::from_label("bench treasury"),
                protocol_fee: Ppm::ZERO,
            }),
            Event::TokenRegistered(Token {
                address: dev_token(),
                symbol: "USDC".into(),
                decimals: 6,
            }),
        ])
        .map_err(|e| e.to_string())?;
    // SAFETY: the benchmark sets this variable before starting any thread that reads the
    // environment, and nothing else sets it.
    unsafe { std::env::set_var(KEY_ENV, ANVIL_DEV_KEY) };
    let chains = Arc::new(Chains::new(
        chains_dir(&dir.path().join("data")),
        reqwest::Client::new(),
    ));
    chains
        .add(
            "anvil",
            RpcConfig {
                url: anvil.url().into(),
                chain_id: ANVIL_CHAIN_ID,
                key_env: KEY_ENV.into(),
                confirmations: 1,
            },
        )
        .map_err(|e| e.to_string())?;
    chains.open("anvil", 0).map_err(|e| e.to_string())?;
    let journal = Arc::new(SharedJournal::new(journal));
    let stop = Arc::new(AtomicBool::new(false));
    let follower = {
        let follower = DepositFollower::new(Arc::clone(&chains), Arc::clone(&journal));
        let stop = Arc::clone(&stop);
        std::thread::spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                let followed = follower.follow_once();
                if let Some((chain, why)) = followed.failures.first() {
                    eprintln!("deposits on {chain} could not be read: {why}");
                }
                std::thread::sleep(follow_every);
            }
        })
    };
    let mut millis = Vec::new();
    let bar = progress(count as u64, "deposits on anvil");
    for n in 0..count {
        // Deposits arrive at any moment of the follower's round, not in step with it: spread
        // them evenly over one interval.
        std::thread::sleep(follow_every.mul_f64(n as f64 / count as f64));
        let payer = Address::from_label(&format!("bench depositor {n}"));
        let mut wallet = chains.open("anvil", 0).map_err(|e| e.to_string())?;
        wallet
            .deposit(dev_token(), 1_000_000, payer, 0)
            .map_err(|e| e.to_string())?;
        let mined = Instant::now();
        drop(wallet);
        let deadline = mined + follow_every * 4 + std::time::Duration::from_secs(10);
        loop {
            let available = journal.read(|j| {
                j.economy()
                    .ledger()
                    .balance(&AccountRef::Payer(payer), &dev_token())
                    .available()
            });
            if available >= 1_000_000 {
                break;
            }
            if Instant::now() > deadline {
                stop.store(true, Ordering::Relaxed);
                return Err(format!("deposit {n} was not credited within {deadline:?}"));
            }
            std::thread::sleep(std::time::Duration::from_millis(2));
        }
        millis.push(mined.elapsed().as_secs_f64() * 1e3);
        bar.inc(1);
    }
    bar.finish_and_clear();
    stop.store(true, Ordering::Relaxed);
    follower
        .join()
        .map_err(|_| "the deposit follower panicked")?;
    Ok(DepositLatency {
        follow_every,
        millis,
    })
}
