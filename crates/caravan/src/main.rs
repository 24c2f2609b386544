//! `caravan`: the command line of a caravan node.
//!
//! Every command opens the store (SQLite in the data directory, or PostgreSQL when `--database`
//! is given), replays the event log into the economy, does its work through `caravan-core`'s
//! rules and writes new events durably before reporting success.

mod bench;
mod commands;
mod demo;
mod outgoing;
mod present;
mod quality;
mod serve;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};

/// jemalloc in place of glibc's malloc. A serving node allocates small, short-lived buffers on
/// many threads for hours. Under glibc the merging of freed chunks (`malloc_consolidate`,
/// `unlink_chunk`) grew from 4% to 9% of the node's CPU over a ten-minute soak, 18% with the
/// rest of malloc, and the heap grew 6.9 MiB a minute; with jemalloc the allocator takes 3%
/// and the heap grows 4.9 MiB a minute, which is the judgments the boards keep.
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

/// caravan turns AI work into shared, continuing income: accepted data work becomes datasets,
/// datasets train models, paid calls to models send money back along the lineage to everyone whose
/// work is in it, and each epoch settles as one Merkle root anyone can re-check.
#[derive(Parser)]
#[command(name = "caravan", version, propagate_version = true)]
#[command(
    after_help = "Start with `caravan demo` to watch a day of paid calls flow back to the people behind a model.\n\
Then try `caravan asset show ID`, `caravan balances` and `caravan epoch show 1 --account ADDRESS` on the data it leaves."
)]
struct Cli {
    #[command(flatten)]
    store: StoreArgs,
    #[command(subcommand)]
    command: Command,
}

#[derive(Args, Clone)]
struct StoreArgs {
    /// Directory of the embedded SQLite store (created if missing).
    #[arg(
        long,
        global = true,
        env = "CARAVAN_DATA_DIR",
        default_value = "caravan-data"
    )]
    data_dir: PathBuf,
    /// Use PostgreSQL instead of the embedded store: postgres://USER@HOST:PORT/DATABASE. TLS
    /// follows `sslmode` as with psql: prefer (the default) encrypts when the server offers it,
    /// require insists, verify-full also checks the certificate (against the system's
    /// authorities, or `sslrootcert=FILE`).
    #[arg(
        long,
        global = true,
        env = "CARAVAN_DATABASE_URL",
        hide_env_values = true
    )]
    database: Option<String>,
    /// Folder of installed models (the sentence encoder all-MiniLM-L6-v2), filled by
    /// scripts/models/install.sh [default: ~/.cache/caravan/models].
    #[arg(long, global = true, env = "CARAVAN_MODELS_DIR")]
    models_dir: Option<PathBuf>,
    /// A PEM file of certificate authorities to trust for outgoing HTTPS — JSON-RPC chains,
    /// upstream model servers, a node behind TLS — on top of the system's. For servers whose
    /// certificates come from a private authority.
    #[arg(long, global = true, env = "CARAVAN_EXTRA_CA_CERTS")]
    extra_ca_certs: Option<PathBuf>,
}

impl StoreArgs {
    /// Where installed models are read from.
    fn models_dir(&self) -> PathBuf {
        self.models_dir
            .clone()
            .unwrap_or_else(caravan_models::embedding::default_models_dir)
    }
}

#[derive(Subcommand)]
enum Command {
    /// Build a realistic lineage, simulate a day of paid calls, close the epoch and show who earned what.
    ///
    /// Runs in a new directory under the data directory, so it never touches existing data:
    /// two datasets with a few hundred contributors each, a model trained on both, a fine-tune of
    /// it, an agent composing the fine-tune with a summariser, three apps paying per call and
    /// three serving nodes. Prints the flow of money, the top earners with the reason they were
    /// paid, the settlement root and a Merkle proof a contract would accept.
    Demo(demo::DemoArgs),
    /// Set up a new economy: the treasury address and the protocol fee on every paid call.
    ///
    /// Only once per store; commands on a store without this use a 0% fee and the zero address.
    Init(commands::InitArgs),
    /// Register ERC-20 tokens that payments may be made in.
    #[command(subcommand)]
    Token(commands::TokenCommand),
    /// Register and inspect datasets, models and agents.
    #[command(subcommand)]
    Asset(commands::AssetCommand),
    /// Models: train classifiers on published datasets, fine-tune and predict with them, register
    /// the embedding model, upstream chat models and agents, and attest evaluations as a validator.
    #[command(subcommand)]
    Model(commands::ModelCommand),
    /// Development shortcut: deposit the embedded chain's development token for an account, as
    /// a real deposit on the embedded chain, credited at once.
    ///
    /// Payers and requesters fund their balances on chain: approve caravan's deposit vault
    /// (`caravan chain list` names it) and call its `deposit(token, amount, account)`; a
    /// serving node credits it once its block has the chain's confirmations.
    Deposit(commands::DepositArgs),
    /// API keys for the gateway: a payer issues, lists and revokes its own keys on a running
    /// node, each request signed with the payer's wallet key.
    #[command(subcommand)]
    Key(commands::KeyCommand),
    /// Sign in to a node's web pages with a wallet key kept in a file (no browser wallet needed).
    ///
    /// Signs the node's sign-in message (EIP-4361) with the key, as a wallet would, and prints a
    /// link that opens a session in a browser: `caravan login --key me.key --node
    /// https://node.example`. The link works once, for five minutes.
    Login(commands::LoginArgs),
    /// Record paid calls to assets.
    #[command(subcommand)]
    Usage(commands::UsageCommand),
    /// Close epochs, inspect them, get proofs, and re-check bundles.
    #[command(subcommand)]
    Epoch(commands::EpochCommand),
    /// Configure the chains to settle on (the embedded one always exists).
    #[command(subcommand)]
    Chain(commands::ChainCommand),
    /// Show or choose the chain an account's earnings are paid on.
    PayoutChain(commands::PayoutChainArgs),
    /// Claim what an account is owed under the chain's active root (anyone may submit it).
    Claim(commands::ClaimArgs),
    /// Rebuild an epoch's root from its published bundle and compare it with the root on chain.
    Verify(commands::VerifyArgs),
    /// Show balances and cumulative entitlements.
    Balances(commands::BalancesArgs),
    /// Check the event log.
    #[command(subcommand)]
    Log(commands::LogCommand),
    /// Post data projects, import items, follow progress, publish and export datasets.
    #[command(subcommand)]
    Task(commands::TaskCommand),
    /// Run the node: the HTTP API (data tasks, epochs, chains; OpenAPI document at
    /// /v1/openapi.json) and the OpenAI-compatible gateway (/v1/models, /v1/chat/completions,
    /// /v1/embeddings, /v1/classifications).
    Serve(serve::ServeArgs),
    /// Infer true labels from crowd judgments and measure agreement, on any CSV file.
    #[command(subcommand)]
    Quality(quality::QualityCommand),
    /// Measure performance and print a table, then one `name: value` line per figure.
    #[command(subcommand)]
    Bench(bench::BenchCommand),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Demo(args) => demo::run(&cli.store, args),
        Command::Init(args) => commands::init(&cli.store, args),
        Command::Token(command) => commands::token(&cli.store, command),
        Command::Asset(command) => commands::asset(&cli.store, command),
        Command::Model(command) => commands::model(&cli.store, command),
        Command::Deposit(args) => commands::deposit(&cli.store, args),
        Command::Key(command) => commands::key(&cli.store, command),
        Command::Login(args) => commands::login(&cli.store, args),
        Command::Usage(command) => commands::usage(&cli.store, command),
        Command::Epoch(command) => commands::epoch(&cli.store, command),
        Command::Chain(command) => commands::chain(&cli.store, command),
        Command::PayoutChain(args) => commands::payout_chain(&cli.store, args),
        Command::Claim(args) => commands::claim(&cli.store, args),
        Command::Verify(args) => commands::verify(&cli.store, args),
        Command::Balances(args) => commands::balances(&cli.store, args),
        Command::Log(command) => commands::log(&cli.store, command),
        Command::Task(command) => commands::task(&cli.store, command),
        Command::Serve(args) => serve::run(&cli.store, args),
        Command::Quality(command) => quality::run(command),
        Command::Bench(command) => bench::run(command),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("error: {message}");
            ExitCode::FAILURE
        }
    }
}
