//! `caravan serve`: the node's HTTP API and OpenAI-compatible gateway on the store named by the
//! global options.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use caravan_core::Address;
use caravan_node::Node;
use caravan_node::gateway::ChargeDurability;
use caravan_node::gateway::receipt::NodeSigner;
use caravan_node::sessions::SignInPolicy;
use caravan_node::sessions::origin::PublicOrigin;
use caravan_server::router;
use clap::{Args, ValueEnum};

use crate::StoreArgs;
use crate::commands::ensure_genesis;
use crate::present::open_journal;

#[derive(Args)]
pub struct ServeArgs {
    /// Address and port to listen on.
    #[arg(long, default_value = "127.0.0.1:8080", env = "CARAVAN_LISTEN")]
    listen: SocketAddr,
    /// The address people open to reach this node, such as https://caravan.example (behind a
    /// proxy that terminates TLS) [default: http:// and the listening address]. Sign-in messages
    /// must name it, and session cookies are Secure when it is https. Never taken from a
    /// request's Host header, which the client chooses.
    #[arg(long, env = "CARAVAN_PUBLIC_URL")]
    public_url: Option<String>,
    /// An account whose signed-in sessions may do operator work over HTTP while the node
    /// serves: register tokens, close epochs, add chains, move home and post roots. Repeat for
    /// several (or separate with commas); none by default.
    #[arg(long = "operator", env = "CARAVAN_OPERATORS", value_delimiter = ',')]
    operators: Vec<Address>,
    /// Log one line per request to standard error: time, method, path (never the query),
    /// status, milliseconds taken and the account it acted as. Never a key, cookie or body.
    #[arg(long, env = "CARAVAN_ACCESS_LOG")]
    access_log: bool,
    /// The node's secp256k1 key (hex), which signs usage receipts; its address is paid the
    /// compute share of every call the node serves. Made on first use. Default: node.key in
    /// the data directory.
    #[arg(long, env = "CARAVAN_NODE_KEY_FILE")]
    node_key: Option<PathBuf>,
    /// When a paid call is answered: once its charge is durable (`committed`: a crash never
    /// loses an answered charge), or once the charge is applied and queued for a commit that
    /// starts within 5 ms (`queued`: saves one fsync per answer and lets calls share one; a crash
    /// before the commit loses those charges, never charges twice, and never lets a balance go
    /// below zero).
    #[arg(
        long,
        value_enum,
        default_value = "committed",
        env = "CARAVAN_CHARGE_DURABILITY"
    )]
    charge_durability: Durability,
    /// How often the node reads the chains it settles on for new deposits (`2s`, `1m`, …):
    /// each deposit into caravan's vault is credited to the account it names once its block
    /// has the chain's confirmations (`caravan chain add --confirmations`).
    #[arg(long, default_value = "2s", value_parser = parse_duration, env = "CARAVAN_FOLLOW_EVERY")]
    follow_every: Duration,
}

/// A duration as people write it: a whole number and a unit, `ms`, `s`, `m`, `h` or `d`
/// (`500ms`, `30s`, `15m`, `1h`, `1d`).
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    let digits = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(digits);
    let number: u64 = number.parse().map_err(|_| {
        format!(
            "{text:?} is not a duration: write a whole number and a unit, such as 30s, 15m or 1h"
        )
    })?;
    let seconds = match unit {
        "ms" => return Ok(Duration::from_millis(number)),
        "s" => number,
        "m" => number.saturating_mul(60),
        "h" => number.saturating_mul(3600),
        "d" => number.saturating_mul(86_400),
        _ => {
            return Err(format!(
                "{text:?} has no unit caravan knows: use ms, s, m, h or d (such as 30s, 15m or 1h)"
            ));
        }
    };
    Ok(Duration::from_secs(seconds))
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Durability {
    Committed,
    Queued,
}

impl Durability {
    /// The name the option takes, as figures and tables print it.
    pub fn name(self) -> &'static str {
        match self {
            Durability::Committed => "committed",
            Durability::Queued => "queued",
        }
    }
}

impl From<Durability> for ChargeDurability {
    fn from(durability: Durability) -> ChargeDurability {
        match durability {
            Durability::Committed => ChargeDurability::Committed,
            Durability::Queued => ChargeDurability::Queued,
        }
    }
}

pub fn run(store: &StoreArgs, args: ServeArgs) -> Result<(), String> {
    let mut journal = open_journal(store)?;
    ensure_genesis(&mut journal)?;
    let chains = crate::commands::settlement(store)?;
    let directory = match &chains {
        Some(chains) => chains.directory().map_err(|e| e.to_string())?,
        None => Default::default(),
    };
    let public_url = args
        .public_url
        .clone()
        .unwrap_or_else(|| format!("http://{}", args.listen));
    let origin = PublicOrigin::parse(&public_url).map_err(|why| format!("--public-url: {why}"))?;
    let mut chain_ids: Vec<u64> = directory.chains().map(|chain| chain.chain_id).collect();
    if chain_ids.is_empty() {
        chain_ids.push(caravan_chain::embedded::EMBEDDED_CHAIN_ID);
    }
    let node_key = args
        .node_key
        .unwrap_or_else(|| store.data_dir.join("node.key"));
    let signer = NodeSigner::load_or_create(&node_key).map_err(|e| e.to_string())?;
    let artifacts = crate::commands::artifact_store(store);
    let mut builder = Node::builder(journal, artifacts, signer);
    if let Some(chains) = chains {
        builder = builder.settlement(chains).map_err(|e| e.to_string())?;
    }
    let services = Arc::new(
        builder
            .models_dir(store.models_dir())
            .http_client(crate::outgoing::upstream_client(store)?)
            .charge_durability(args.charge_durability.into())
            .sign_in(SignInPolicy {
                origin: origin.clone(),
                chain_ids,
            })
            .operators(args.operators.iter().copied())
            .open()
            .map_err(|e| e.to_string())?,
    );
    if let Some(follower) = services.deposits() {
        follow_deposits(
            Arc::clone(follower),
            Arc::clone(services.journal()),
            args.follow_every,
        )?;
    }
    let node = services.gateway().node();
    let mut app = router(services);
    if args.access_log {
        app = caravan_server::log::with_access_log(app);
    }
    let runtime = tokio::runtime::Runtime::new()
        .map_err(|e| format!("cannot start the async runtime: {e}"))?;
    runtime.block_on(async move {
        let listener = tokio::net::TcpListener::bind(args.listen)
            .await
            .map_err(|e| format!("cannot listen on {}: {e}", args.listen))?;
        let bound = listener
            .local_addr()
            .map_err(|e| format!("cannot read the bound address: {e}"))?;
        // One write for both lines, so a reader that stops after the first cannot make the
        // second fail.
        println!(
            "caravan listening on http://{bound} (API document: http://{bound}/v1/openapi.json)\n\
             OpenAI-compatible gateway at http://{bound}/v1 (node {node}; a payer makes an API key with `caravan key issue --node http://{bound} --key-file PAYER.key`)\n\
             sign-in messages must name {origin}; operators: {}",
            if args.operators.is_empty() {
                "none (add one with --operator ADDRESS)".to_owned()
            } else {
                args.operators
                    .iter()
                    .map(Address::to_string)
                    .collect::<Vec<_>>()
                    .join(", ")
            }
        );
        axum::serve(listener, app)
            .with_graceful_shutdown(async {
                let _ = tokio::signal::ctrl_c().await;
            })
            .await
            .map_err(|e| format!("the server stopped: {e}"))
    })
}

/// Reads the chains for deposits every `every` on a thread of its own, printing each deposit
/// credited and each chain that could not be read (it is read again next round).
fn follow_deposits(
    follower: Arc<caravan_node::deposits::DepositFollower>,
    journal: Arc<caravan_store::SharedJournal>,
    every: Duration,
) -> Result<(), String> {
    std::thread::Builder::new()
        .name("deposits".into())
        .spawn(move || {
            loop {
                let followed = follower.follow_once();
                for credited in &followed.credited {
                    let deposit = &credited.deposit;
                    let shown = journal.read(|j| {
                        crate::present::amount(j.economy(), &deposit.token, deposit.amount)
                    });
                    eprintln!(
                        "deposit credited: {shown} to {} from {} on {} (transaction {}, block {})",
                        deposit.account, credited.from, credited.chain, deposit.tx, deposit.block
                    );
                }
                for waiting in &followed.waiting {
                    eprintln!("deposit waiting: {waiting}");
                }
                for (chain, why) in &followed.failures {
                    eprintln!(
                        "deposits on {chain} could not be read (trying again in {every:?}): {why}"
                    );
                }
                std::thread::sleep(every);
            }
        })
        .map(drop)
        .map_err(|e| format!("cannot start following deposits: {e}"))
}
