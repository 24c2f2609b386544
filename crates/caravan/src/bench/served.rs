//! A real `caravan serve` for the benchmarks that work a node from outside: the store prepared
//! in-process (a paid classifier, payers with keys, a labelling project with signed-in
//! labellers), then this binary started on it as a child process, killed and started again.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use caravan_core::{Address, Event, Genesis, Ppm, Token};
use caravan_models::ArtifactStore;
use caravan_node::gateway::receipt::NodeSigner;
use caravan_node::keys::Scope;
use caravan_store::{Journal, Location};
use caravan_tasks::item::Item;
use serde_json::{Value, json};

use super::gateway::{paid_model, stored_classifier};
use super::store::ScratchStore;
use super::task_node::{open_bench_node_at, sign_in, wallet};

/// Where the node keeps its store: the data directory (chains, bundles, keys; the SQLite
/// store too) and the store's location.
pub struct Site {
    pub dir: PathBuf,
    pub location: Location,
}

impl Site {
    /// Where the node's output goes: appended to, across restarts.
    pub fn log(&self) -> PathBuf {
        self.dir.join("serve.log")
    }

    /// The last `lines` lines of the node's output, for an error message: a run whose files
    /// are gone afterwards (a CI machine) still shows what the node said.
    pub fn log_tail(&self, lines: usize) -> String {
        let text = std::fs::read_to_string(self.log()).unwrap_or_default();
        let all: Vec<&str> = text.lines().collect();
        all[all.len().saturating_sub(lines)..].join("\n")
    }

    /// `--database URL` for `caravan serve` when the store is on PostgreSQL.
    pub fn database(&self) -> Option<&str> {
        match &self.location {
            Location::Postgres(url) => Some(url),
            Location::DataDir(_) => None,
        }
    }
}

/// A fresh scratch directory in `parent` (the chains, bundles and keys; the SQLite store too)
/// and, with `postgres`, a scratch database there for the store. Both go when dropped.
pub fn scratch_site(
    prefix: &str,
    parent: &Path,
    postgres: Option<&str>,
) -> Result<(tempfile::TempDir, Option<ScratchStore>, Site), String> {
    std::fs::create_dir_all(parent)
        .map_err(|e| format!("cannot make {}: {e}", parent.display()))?;
    let scratch = tempfile::Builder::new()
        .prefix(prefix)
        .tempdir_in(parent)
        .map_err(|e| format!("cannot make a scratch directory: {e}"))?;
    let database = match postgres {
        Some(admin) => Some(ScratchStore::postgres(admin, 900)?),
        None => None,
    };
    let dir = scratch.path().to_path_buf();
    let site = Site {
        location: database
            .as_ref()
            .map_or_else(|| Location::DataDir(dir.clone()), |db| db.location.clone()),
        dir,
    };
    Ok((scratch, database, site))
}

/// How many of each the store is prepared with.
#[derive(Clone, Copy)]
pub struct Size {
    /// Payers, each with a deposit and an API key of its own.
    pub callers: usize,
    /// Contributors signed in with a wallet.
    pub labellers: usize,
    /// Items in the project: more than the labellers judge in a run.
    pub items: usize,
    /// What each payer's key may do.
    pub key_scopes: &'static [Scope],
}

/// The development token of the embedded chain, which [`prepare`] registers and pays in: roots
/// are posted on the embedded chain without funding.
pub fn dev_token() -> Address {
    Address(caravan_chain::settlement::DEV_TOKEN.into_array())
}

/// What a payer's key may do when its clients only call the paid model.
pub const CALLING_SCOPES: &[Scope] = &[Scope::Classify, Scope::Models];

/// The id of the paid classifier [`prepare`] registers.
pub const PAID_MODEL: &str = "classifier";

/// What the clients need: a key per payer, a session per labeller, the project, the input.
pub struct World {
    /// The node's address, which a payer's signed key request names.
    pub node: Address,
    pub keys: Vec<(Address, String)>,
    pub sessions: Vec<(Address, String)>,
    pub project: String,
    pub input: Value,
}

/// Sets the store up in-process: the development token of the embedded chain (so roots are
/// posted without funding), a paid classifier, payers with deposits and keys, and a project
/// with labellers signed in. Closes it before the first `caravan serve`.
pub fn prepare(site: &Site, size: Size) -> Result<World, String> {
    let dir = &site.dir;
    let token = Token {
        address: dev_token(),
        symbol: "USDC".into(),
        decimals: 6,
    };
    let artifacts = ArtifactStore::new(dir.join("models"));
    let (examples, content) = stored_classifier(&artifacts)?;
    let manifest = paid_model(
        PAID_MODEL,
        Address::from_label("faults developer"),
        content,
        token.address,
    );
    let payers: Vec<Address> = (0..size.callers)
        .map(|n| Address::from_label(&format!("faults payer {n}")))
        .collect();
    let mut events = vec![
        Event::Genesis(Genesis {
            treasury: Address::from_label("faults treasury"),
            protocol_fee: Ppm::ZERO,
        }),
        Event::TokenRegistered(token.clone()),
        Event::AssetRegistered(manifest),
    ];
    events.extend(payers.iter().map(|&payer| Event::Deposited {
        payer,
        token: token.address,
        amount: 1 << 80,
    }));
    let mut journal =
        Journal::open(site.location.clone(), &mut |_, _| {}).map_err(|e| e.to_string())?;
    journal.submit(events).map_err(|e| e.to_string())?;
    let signer = NodeSigner::load_or_create(&dir.join("node.key")).map_err(|e| e.to_string())?;
    let node_address = signer.address();
    let bench = open_bench_node_at(journal, artifacts, signer, token.address)?;
    let node = &bench.node;
    let mut keys = Vec::new();
    for &payer in &payers {
        let (secret, _) = node
            .keys()
            .issue(payer, size.key_scopes.to_vec(), None, "faults".into())
            .map_err(|e| e.to_string())?;
        keys.push((payer, secret));
    }
    let desk = node.desk();
    let project = desk
        .create_project(bench.requester, bench.spec.clone())
        .map_err(|e| e.to_string())?;
    let items: Vec<Item> = (0..size.items)
        .map(|n| Item {
            data: json!({ "text": format!("faults article {n}") }),
            gold: None,
            predictions: Vec::new(),
        })
        .collect();
    desk.add_items(&project, bench.requester, items)
        .map_err(|e| e.to_string())?;
    let mut sessions = Vec::new();
    for n in 0..size.labellers {
        let wallet = wallet(&format!("faults labeller {n}"));
        let contributor = caravan_core::attestation::address_of(wallet.verifying_key());
        sessions.push((contributor, sign_in(node, &wallet)?));
    }
    Ok(World {
        node: node_address,
        keys,
        sessions,
        project: project.to_string(),
        input: examples[0].data.clone(),
    })
}

pub fn free_port() -> Result<u16, String> {
    let listener = std::net::TcpListener::bind("127.0.0.1:0")
        .map_err(|e| format!("cannot find a free port: {e}"))?;
    listener
        .local_addr()
        .map(|address| address.port())
        .map_err(|e| e.to_string())
}

/// How the node serves: its charge durability and how often it closes an epoch.
#[derive(Clone, Copy)]
pub struct How {
    pub committed: bool,
    /// `--epoch-every`, e.g. "1s".
    pub epoch_every: &'static str,
    /// An account whose session may do the node's operator work (`--operator`).
    pub operator: Option<Address>,
}

impl How {
    /// A node serving people: charges answered once durable, an epoch closed (and its root
    /// posted) every ten seconds.
    pub const SERVING: How = How {
        committed: true,
        epoch_every: "10s",
        operator: None,
    };
}

/// `caravan serve` as a child process.
pub struct Serving {
    child: Child,
}

impl Serving {
    /// Starts the node on `port` and waits until it answers.
    pub fn start(site: &Site, port: u16, how: How, log: &Path) -> Result<Serving, String> {
        let output = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(log)
            .map_err(|e| format!("cannot open {}: {e}", log.display()))?;
        let errors = output.try_clone().map_err(|e| e.to_string())?;
        let exe = std::env::current_exe().map_err(|e| e.to_string())?;
        let mut command = Command::new(exe);
        command.arg("--data-dir").arg(&site.dir);
        if let Some(url) = site.database() {
            command.args(["--database", url]);
        }
        command.args(["serve", "--listen", &format!("127.0.0.1:{port}")]);
        if let Some(operator) = how.operator {
            command.arg("--operator").arg(operator.to_string());
        }
        let child = command
            .args(["--epoch-every", how.epoch_every])
            .args([
                "--charge-durability",
                if how.committed { "committed" } else { "queued" },
            ])
            .stdin(Stdio::null())
            .stdout(output)
            .stderr(errors)
            .spawn()
            .map_err(|e| format!("cannot start caravan serve: {e}"))?;
        let mut serving = Serving { child };
        let deadline = Instant::now() + Duration::from_secs(60);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            if let Some(status) = serving.child.try_wait().map_err(|e| e.to_string())? {
                return Err(format!(
                    "caravan serve exited ({status}) before it answered; its output is in {}",
                    log.display()
                ));
            }
            if Instant::now() > deadline {
                serving.kill()?;
                return Err(format!(
                    "caravan serve did not answer within a minute; its output is in {}",
                    log.display()
                ));
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        Ok(serving)
    }

    /// The node's process id, whose resident memory the soak reads.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// SIGKILL: no shutdown, no flush, no goodbye.
    pub fn kill(&mut self) -> Result<(), String> {
        self.child
            .kill()
            .map_err(|e| format!("cannot kill the node: {e}"))?;
        self.child.wait().map_err(|e| e.to_string())?;
        Ok(())
    }
}

impl Drop for Serving {
    /// A run that stops early (a failed check) leaves no node behind.
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
