//! `caravan serve`: the node's HTTP API and OpenAI-compatible gateway on the store named by the
//! global options.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use caravan_chain::settlement::FundingLimits;
use caravan_core::{Address, Economy};
use caravan_node::Node;
use caravan_node::gateway::ChargeDurability;
use caravan_node::gateway::receipt::NodeSigner;
use caravan_node::rhythm::{Beat, Rhythm};
use caravan_node::sessions::SignInPolicy;
use caravan_node::sessions::origin::PublicOrigin;
use caravan_server::router;
use caravan_store::now_ms;
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
    /// Close an epoch this often while serving (`1h`, `1d`, …), unless nothing happened since
    /// the last close: royalties propagate, the bundle is written to --bundles, and the root is
    /// posted on the home chain (funded within --fund-limit) and activated once its delay is
    /// over. A failed step is retried every few seconds, after a restart too, and a root is never
    /// posted twice. Without it, epochs close only when asked (`POST /v1/epochs`). Chains are
    /// kept in the data directory, with the node's key, whichever store keeps the log.
    #[arg(long, value_parser = parse_duration, env = "CARAVAN_EPOCH_EVERY")]
    epoch_every: Option<Duration>,
    /// Where --epoch-every writes each epoch's bundle, as `epoch-N.json` [default: epochs in the
    /// data directory].
    #[arg(long, env = "CARAVAN_BUNDLES_DIR")]
    bundles: Option<PathBuf>,
    /// Let a post fund the home distributor from the node's own account with up to AMOUNT whole
    /// tokens of TOKEN (a registered token's address) when a root promises more than it holds,
    /// as `0x…=250`. Repeat per token; none by default, so a shortfall stops the post with the
    /// command that funds it. The development token of the embedded chain needs none.
    #[arg(
        long = "fund-limit",
        value_name = "TOKEN=AMOUNT",
        env = "CARAVAN_FUND_LIMITS",
        value_delimiter = ','
    )]
    fund_limits: Vec<String>,
}

impl ServeArgs {
    /// What `caravan serve --listen ADDRESS` runs with, every other option at its default (or
    /// its environment variable): the node `caravan demo --serve` leaves running.
    pub fn listening_on(listen: SocketAddr) -> ServeArgs {
        use clap::FromArgMatches;
        let command = ServeArgs::augment_args(clap::Command::new("serve"));
        let matches = command.get_matches_from(["serve", "--listen", &listen.to_string()]);
        ServeArgs::from_arg_matches(&matches).expect("the defaults of caravan serve parse")
    }
}

/// How often a node with `--epoch-every` looks whether a close is due or a step is left to
/// retry.
const RHYTHM_ROUND: Duration = Duration::from_secs(2);

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
    let funding = funding_limits(journal.economy(), &args.fund_limits)?;
    let chains = crate::commands::chains(store)?;
    let directory = chains.directory().map_err(|e| e.to_string())?;
    // Bound before anything names the node's address, so with port 0 the sign-in messages
    // name the port the system chose, not 0.
    let listener = std::net::TcpListener::bind(args.listen)
        .map_err(|e| format!("cannot listen on {}: {e}", args.listen))?;
    let bound = listener
        .local_addr()
        .map_err(|e| format!("cannot read the bound address: {e}"))?;
    listener
        .set_nonblocking(true)
        .map_err(|e| format!("cannot make the listener non-blocking: {e}"))?;
    let public_url = args
        .public_url
        .clone()
        .unwrap_or_else(|| format!("http://{bound}"));
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
    let builder = Node::builder(journal, artifacts, signer)
        .settlement(chains)
        .map_err(|e| e.to_string())?;
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
            .funding_limits(funding)
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
    if let Some(every) = args.epoch_every {
        let bundles = args
            .bundles
            .clone()
            .unwrap_or_else(|| store.data_dir.join("epochs"));
        keep_rhythm(Arc::clone(&services), Rhythm::new(every, bundles, now_ms()))?;
    }
    let earnings = Arc::clone(services.earnings());
    std::thread::Builder::new()
        .name("earnings warm-up".into())
        .spawn(move || {
            if let Err(error) = earnings.warm_up() {
                eprintln!("the earnings pages could not read the latest epoch ahead: {error}");
            }
        })
        .map_err(|e| format!("cannot start a thread: {e}"))?;
    let node = services.gateway().node();
    let mut app = router(services);
    if args.access_log {
        app = caravan_server::log::with_access_log(app);
    }
    let runtime = tokio::runtime::Runtime::new()
        .map_err(|e| format!("cannot start the async runtime: {e}"))?;
    runtime.block_on(async move {
        let listener = tokio::net::TcpListener::from_std(listener)
            .map_err(|e| format!("cannot listen on {bound}: {e}"))?;
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

/// The `TOKEN=AMOUNT` limits given, in base units of registered tokens.
fn funding_limits(economy: &Economy, given: &[String]) -> Result<FundingLimits, String> {
    let mut limits = FundingLimits::new();
    for pair in given {
        let (token, whole) = pair.split_once('=').ok_or_else(|| {
            format!("--fund-limit {pair:?}: write TOKEN=AMOUNT, such as 0x…=250 (whole tokens)")
        })?;
        let token: Address = token
            .trim()
            .parse()
            .map_err(|e| format!("--fund-limit {pair:?}: {e}"))?;
        let amount = crate::present::parse_amount(economy, &token, whole)
            .map_err(|why| format!("--fund-limit {pair:?}: {why}"))?;
        limits.insert(token, amount);
    }
    Ok(limits)
}

/// Beats the rhythm every [`RHYTHM_ROUND`] on a thread of its own, printing what each round
/// did and what failed (tried again next round).
fn keep_rhythm(node: Arc<Node>, mut rhythm: Rhythm) -> Result<(), String> {
    std::thread::Builder::new()
        .name("epochs".into())
        .spawn(move || {
            loop {
                for beat in rhythm.beat(&node, now_ms()) {
                    eprintln!("{}", describe(&node, &beat));
                }
                std::thread::sleep(RHYTHM_ROUND);
            }
        })
        .map(drop)
        .map_err(|e| format!("cannot start closing epochs: {e}"))
}

/// One line saying what a beat of the rhythm did.
fn describe(node: &Node, beat: &Beat) -> String {
    match beat {
        Beat::Closed {
            epoch,
            root,
            leaves,
            payouts,
            took,
        } => format!(
            "epoch {epoch} closed: root {root}, {leaves} leaves, {payouts} payouts ({} ms)",
            took.as_millis()
        ),
        Beat::Written { epoch, path } => {
            format!("epoch {epoch}'s bundle written to {}", path.display())
        }
        Beat::Posted {
            epoch,
            chain,
            root,
            leaves,
            published,
            delay,
        } => {
            let funded = node.journal().read(|j| {
                published
                    .funded_now
                    .iter()
                    .map(|(token, amount)| crate::present::amount(j.economy(), token, *amount))
                    .collect::<Vec<_>>()
            });
            format!(
                "epoch {epoch}'s root {root} posted on {} ({leaves} leaves, {} gas{}){}",
                chain.name,
                published.posted.gas_used,
                if funded.is_empty() {
                    String::new()
                } else {
                    format!("; funded the distributor with {}", funded.join(", "))
                },
                if published.activated {
                    ": active, claims are open".to_owned()
                } else {
                    format!(": activated once its {delay} s delay is over")
                }
            )
        }
        Beat::Activated { chain, epoch } => {
            format!("epoch {epoch}'s root activated on {chain}: claims are open")
        }
        Beat::Failed { step, why } => {
            format!("{step} failed (trying again in {RHYTHM_ROUND:?}): {why}")
        }
    }
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
