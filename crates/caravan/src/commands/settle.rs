//! Settlement from the command line: post an epoch's root on a chain, claim for an account,
//! and verify a published bundle against the root on chain.

use std::path::PathBuf;

use caravan_chain::settlement::{FundingLimits, Settlement};
use caravan_core::epoch::{EpochBundle, verify_bundle};
use caravan_core::{Address, MerkleTree};
use caravan_node::settlement::{ChainShare, PostOutcome};
use caravan_store::{Journal, now_ms};
use clap::Args;

use crate::StoreArgs;
use crate::present::{amount, open_reader, table};

#[derive(Args)]
pub struct PostArgs {
    /// The epoch to post; the latest closed one when left out.
    epoch: Option<u64>,
    #[command(flatten)]
    chain: ChainArg,
    /// Seconds a posted root waits before it can be claimed against (used when this post first
    /// deploys the chain's contracts; `caravan chain deploy --delay` fixes it beforehand).
    #[arg(long, default_value_t = 0)]
    delay: u64,
}

#[derive(Args)]
pub struct ClaimArgs {
    /// The account to pay; anyone may claim for it, the money only goes to it.
    #[arg(long)]
    account: Address,
    #[command(flatten)]
    chain: ChainArg,
}

#[derive(Args)]
pub struct VerifyArgs {
    /// The epoch whose root to check.
    #[arg(long)]
    epoch: u64,
    /// The published bundle to rebuild the root from (as `caravan epoch show N --out FILE`
    /// writes it); this store's own bundle when left out.
    #[arg(long)]
    bundle: Option<PathBuf>,
    #[command(flatten)]
    chain: ChainArg,
}

#[derive(Args)]
pub struct ChainArg {
    /// The chain to settle on: a name from `caravan chain list` (`embedded` is an EVM inside
    /// this process kept in the data directory; others are added with `caravan chain add`).
    /// The home chain when left out. caravan's contracts are deployed on a chain's first post
    /// (or with `caravan chain deploy`) and their addresses recorded.
    #[arg(long)]
    chain: Option<String>,
}

impl ChainArg {
    /// The chain named, or the home chain.
    fn name(&self, store: &StoreArgs) -> Result<String, String> {
        super::chains::named_or_home(store, self.chain.clone())
    }
}

/// The named chain with caravan's contracts already on it; deploys nothing, so a claim, an
/// activation or a verify on a chain where nothing was posted says so.
fn attach_chain(store: &StoreArgs, name: &str) -> Result<Settlement, String> {
    super::chains::chains(store)?
        .attach(name)
        .map_err(|e| e.to_string())?
        .ok_or_else(|| {
            format!(
                "caravan's contracts are not on {name}: nothing was posted there yet; post an epoch with `caravan epoch post --chain {name}`"
            )
        })
}

/// What the chain named `name` pays in `bundle`'s epoch.
fn share_of(bundle: &EpochBundle, store: &StoreArgs, name: &str) -> Result<ChainShare, String> {
    let (_, partition) = super::chains::payout_chain_named(store, name)?;
    Ok(ChainShare::of(bundle, partition))
}

fn bundle(journal: &Journal, epoch: u64) -> Result<EpochBundle, String> {
    journal
        .bundle(epoch)
        .map_err(|e| e.to_string())?
        .ok_or_else(|| format!("epoch {epoch} is not closed; close it with `caravan epoch close`"))
}

/// Posts the epoch's root (funding the distributor on the development chain with what the root
/// promises beyond what it holds), then activates it if its delay allows.
pub fn post(store: &StoreArgs, args: PostArgs) -> Result<(), String> {
    let journal = open_reader(store)?;
    let latest = journal.economy().next_epoch() - 1;
    let epoch = args.epoch.unwrap_or(latest);
    if epoch == 0 {
        return Err("no epoch is closed yet; close one with `caravan epoch close`".into());
    }
    let current = bundle(&journal, epoch)?;
    let previous = match epoch {
        1 => None,
        n => Some(bundle(&journal, n - 1)?),
    };
    let name = &args.chain.name(store)?;
    let outcome = super::chains::chains(store)?
        .post(
            name,
            args.delay,
            &current,
            previous.as_ref(),
            &FundingLimits::new(),
        )
        .map_err(|e| e.to_string())?;
    match outcome {
        PostOutcome::NothingToPost { .. } => {
            println!("nobody is paid on {name} in epoch {epoch}; nothing to post");
        }
        PostOutcome::AlreadyPosted {
            active, pending, ..
        } => println!(
            "epoch {epoch} is already posted on {name} (active epoch {active}, pending {pending})"
        ),
        PostOutcome::Posted {
            chain,
            root,
            leaves,
            published,
            delay,
        } => {
            println!(
                "posted epoch {epoch}'s root {root} on {name} (chain id {}{}; {leaves} leaves, {} gas)",
                chain.chain_id,
                if chain.home { ", home" } else { "" },
                published.posted.gas_used
            );
            for (token, promised) in &published.promised {
                println!(
                    "  promises {} in total",
                    amount(journal.economy(), token, *promised)
                );
            }
            if published.activated {
                println!("activated: claims against it are open");
            } else {
                println!(
                    "claimable once its {delay} s delay is over and it is activated: `caravan epoch activate` (the next post also activates it)"
                );
            }
        }
    }
    Ok(())
}

/// Activates the pending root once its delay is over (anyone may; it opens claims against it).
pub fn activate(store: &StoreArgs, chain_arg: ChainArg) -> Result<(), String> {
    let name = chain_arg.name(store)?;
    let mut chain = attach_chain(store, &name)?;
    chain.activate(now_ms() / 1000).map_err(|e| e.to_string())?;
    let (active, _, _) = chain.epochs().map_err(|e| e.to_string())?;
    println!(
        "epoch {active}'s root is active on {}: claims are open",
        name
    );
    Ok(())
}

/// Claims every token the account is owed under the active root.
pub fn claim(store: &StoreArgs, args: ClaimArgs) -> Result<(), String> {
    let journal = open_reader(store)?;
    let name = args.chain.name(store)?;
    let mut chain = attach_chain(store, &name)?;
    let (active, pending, _) = chain.epochs().map_err(|e| e.to_string())?;
    if active == 0 && pending > 0 {
        return Err(format!(
            "epoch {pending} is posted on {name} but waits out its delay; once it is over, `caravan epoch activate --chain {name}` opens claims"
        ));
    }
    if active == 0 {
        return Err(format!(
            "no root is active on {name} yet; post an epoch there with `caravan epoch post --chain {name}`"
        ));
    }
    let (_, partition) = super::chains::payout_chain_named(store, &name)?;
    let proofs = bundle(&journal, active)?.proofs_on(partition, &args.account);
    let root = chain.active_root().map_err(|e| e.to_string())?;
    if root != proofs.root {
        return Err(format!(
            "the chain's active root {root} is not epoch {active}'s root {} for {} in this store; run `caravan verify --epoch {active} --chain {}`",
            proofs.root, name, name
        ));
    }
    let mut t = table(
        &[
            "token",
            "entitled",
            "claimed before",
            "paid now",
            "balance after",
        ],
        &[1, 2, 3, 4],
    );
    let mut sent = 0;
    for proven in &proofs.leaves {
        let leaf = &proven.leaf;
        let before = chain
            .claimed(leaf.account, leaf.token)
            .map_err(|e| e.to_string())?;
        // A claim of nothing new would pay 0 and still cost its gas.
        if before < leaf.cumulative {
            chain
                .claim(leaf, &proven.proof, root, now_ms() / 1000)
                .map_err(|e| e.to_string())?;
            sent += 1;
        }
        let economy = journal.economy();
        let balance = if Address(chain.deployment().token.into_array()) == leaf.token {
            amount(
                economy,
                &leaf.token,
                chain.balance(leaf.account).map_err(|e| e.to_string())?,
            )
        } else {
            "—".into()
        };
        t.add_row(vec![
            economy
                .tokens()
                .get(&leaf.token)
                .map(|t| t.symbol.clone())
                .unwrap_or_default(),
            amount(economy, &leaf.token, leaf.cumulative),
            amount(economy, &leaf.token, before),
            amount(economy, &leaf.token, leaf.cumulative - before),
            balance,
        ]);
    }
    if proofs.leaves.is_empty() {
        return Err(format!(
            "{} has no entitlement on {} in epoch {active}; `caravan payout-chain --account {}` shows the chain it is paid on",
            args.account, name, args.account
        ));
    }
    if sent == 0 {
        println!(
            "nothing to claim: {} has already claimed everything epoch {active}'s root on {name} owes it; no transaction sent\n{t}",
            args.account
        );
        return Ok(());
    }
    println!(
        "claimed for {} on {name} under epoch {active}'s root {root}\n{t}",
        args.account
    );
    Ok(())
}

/// Rebuilds the epoch's root from a bundle alone and compares it with the root on chain.
pub fn verify(store: &StoreArgs, args: VerifyArgs) -> Result<(), String> {
    let published = match &args.bundle {
        Some(path) => {
            let text = std::fs::read_to_string(path)
                .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
            serde_json::from_str::<EpochBundle>(&text)
                .map_err(|e| format!("{}: {e}", path.display()))?
        }
        None => bundle(&open_reader(store)?, args.epoch)?,
    };
    if published.epoch != args.epoch {
        return Err(format!(
            "the bundle is epoch {}, not {}",
            published.epoch, args.epoch
        ));
    }
    verify_bundle(&published, None).map_err(|e| format!("the bundle does not check out: {e}"))?;
    let name = args.chain.name(store)?;
    let share = share_of(&published, store, &name)?;
    let rebuilt = MerkleTree::build(&share.leaves).root();
    let posted = super::chains::chains(store)?
        .posted_roots(&name)
        .map_err(|e| e.to_string())?;
    let Some(root) = posted.iter().find(|root| root.epoch == args.epoch) else {
        return Err(
            match posted
                .iter()
                .map(|root| root.epoch.to_string())
                .collect::<Vec<_>>()
            {
                epochs if epochs.is_empty() => format!(
                    "nothing was ever posted on {name}; post epoch {} with `caravan epoch post {} --chain {name}`",
                    args.epoch, args.epoch
                ),
                epochs => format!(
                    "epoch {} was never posted on {name}; the chain's record holds epochs {}",
                    args.epoch,
                    epochs.join(", ")
                ),
            },
        );
    };
    let on_chain = root.root;
    if rebuilt == on_chain {
        println!(
            "match: epoch {}'s root {rebuilt}, rebuilt from {} leaves, is the root posted on {name} in block {} (transaction {}); it is {}",
            args.epoch,
            share.leaves.len(),
            root.posted.0,
            root.posted.1,
            root.state.describe()
        );
        return Ok(());
    }
    let ours = bundle(&open_reader(store)?, args.epoch)
        .ok()
        .map(|ours| share_of(&ours, store, &name))
        .transpose()?;
    let differing = ours.as_ref().and_then(|ours| {
        share
            .leaves
            .iter()
            .zip(&ours.leaves)
            .position(|(a, b)| a != b)
            .map(|i| (i, share.leaves[i], ours.leaves[i]))
    });
    match differing {
        Some((i, theirs, ours)) => Err(format!(
            "mismatch: the bundle rebuilds root {rebuilt}, the chain holds {on_chain}; leaf {i} differs: the bundle says {} gets {} of {}, this store says {} gets {} of {}",
            theirs.account,
            theirs.cumulative,
            theirs.token,
            ours.account,
            ours.cumulative,
            ours.token
        )),
        None => Err(format!(
            "mismatch: the bundle rebuilds root {rebuilt}, the chain holds {on_chain}"
        )),
    }
}
