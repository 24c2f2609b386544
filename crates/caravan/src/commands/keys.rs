//! `caravan key`: a payer manages its API keys on a running node. The node takes key requests
//! only with the payer's own wallet signature, so each command signs its request with the key in
//! `--key-file` (EIP-712, the same typed data a browser wallet signs) and sends it over HTTP.
//! `caravan login` signs the node's sign-in message (EIP-4361) with that key the way a browser
//! wallet would, and prints a one-time link that opens a session in a browser.

use std::path::PathBuf;
use std::time::Duration;

use caravan_core::Address;
use caravan_core::attestation::{address_of, personal_message_digest, sign_digest};
use caravan_core::report::{certificate_hint, with_causes};
use caravan_node::gateway::receipt::NodeSigner;
use caravan_node::keys::{KeyRequest, PayerSignature, Scope, parse_key_id};
use caravan_server::web::page::url_encode;
use caravan_store::now_ms;
use clap::{Args, Subcommand};
use serde_json::{Value, json};

use super::read_secret;
use crate::StoreArgs;
use crate::outgoing::http_client_builder;
use crate::present::{table, utc_time};

#[derive(Subcommand)]
pub enum KeyCommand {
    /// Make a wallet key: a new secp256k1 secret key written to FILE, readable by you only.
    ///
    /// Prints its address alone on standard output (`PAYER=$(caravan key new --key-file
    /// payer.key)`). Whoever holds the file spends the account's prepaid balance and claims its
    /// earnings: keep it safe and backed up. An existing file is never overwritten. Any
    /// Ethereum wallet's secret key works as well, as 64 hex digits in a file.
    New {
        /// Where to write the key.
        #[arg(long)]
        key_file: PathBuf,
    },
    /// Create an API key for the payer whose wallet key is in --key-file.
    ///
    /// Prints the key (crv_ and 64 hex digits) alone on standard output, so
    /// `KEY=$(caravan key issue …)` keeps it; the node stores only its hash and never shows it
    /// again. Calls made with it are paid from the payer's prepaid balance (`caravan deposit`).
    Issue(IssueArgs),
    /// List the payer's live keys: id, name, scopes, when made and when they expire (never the
    /// keys themselves).
    List(NodeArgs),
    /// Revoke one of the payer's keys by its id (key_…); it stops working at once.
    Revoke(RevokeArgs),
}

#[derive(Args)]
pub struct NodeArgs {
    /// The node, as `caravan serve` printed it (a trailing /v1 is fine).
    #[arg(long, env = "CARAVAN_NODE", default_value = "http://127.0.0.1:8080")]
    node: String,
    /// The wallet's secret key, 64 hex digits in a file: the account is its address.
    #[arg(long, visible_alias = "key")]
    key_file: PathBuf,
}

/// `caravan login`: a one-time link that signs a browser in as the key's account.
#[derive(Args)]
pub struct LoginArgs {
    #[command(flatten)]
    node: NodeArgs,
    /// The chain id the signed message names (the node's first chain when left out).
    #[arg(long)]
    chain_id: Option<u64>,
}

#[derive(Args)]
pub struct IssueArgs {
    #[command(flatten)]
    node: NodeArgs,
    /// What the key may do (repeat or separate with commas); when left out, calling models
    /// (models, chat, embeddings, classify): acting on the task platform is granted by name.
    #[arg(long = "scope", value_enum, value_delimiter = ',')]
    scopes: Vec<ScopeArg>,
    /// Days until the key stops working; it never expires when left out.
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..))]
    expires_in_days: Option<u32>,
    /// A name to tell keys apart, such as the app that uses it (at most 120 bytes).
    #[arg(long, default_value = "")]
    name: String,
}

#[derive(Args)]
pub struct RevokeArgs {
    #[command(flatten)]
    node: NodeArgs,
    /// The key's id, as `caravan key list` shows it (key_ and 16 hex digits).
    id: String,
}

/// A key scope, as the command line names it.
#[derive(Clone, Copy, clap::ValueEnum)]
enum ScopeArg {
    /// List models and read the balance.
    Models,
    /// /v1/chat/completions.
    Chat,
    /// /v1/embeddings.
    Embeddings,
    /// /v1/classifications.
    Classify,
    /// Take items and submit judgments as the account (a contributor's script).
    Labeling,
    /// Post and run projects, spending the account's prepaid balance on budgets.
    Requesting,
    /// Review work on projects that added the account as a reviewer.
    Reviewing,
}

impl From<ScopeArg> for Scope {
    fn from(scope: ScopeArg) -> Scope {
        match scope {
            ScopeArg::Models => Scope::Models,
            ScopeArg::Chat => Scope::Chat,
            ScopeArg::Embeddings => Scope::Embeddings,
            ScopeArg::Classify => Scope::Classify,
            ScopeArg::Labeling => Scope::Labeling,
            ScopeArg::Requesting => Scope::Requesting,
            ScopeArg::Reviewing => Scope::Reviewing,
        }
    }
}

pub fn key(store: &StoreArgs, command: KeyCommand) -> Result<(), String> {
    match command {
        KeyCommand::New { key_file } => new_key(&key_file),
        KeyCommand::Issue(args) => issue(store, args),
        KeyCommand::List(args) => list(store, args),
        KeyCommand::Revoke(args) => revoke(store, args),
    }
}

/// Writes a new wallet key to `path` (never over an existing file) and prints its address.
fn new_key(path: &std::path::Path) -> Result<(), String> {
    if let Ok(secret) = read_secret(path) {
        let held = k256::ecdsa::SigningKey::from_bytes((&secret).into())
            .map(|key| format!(" (address {})", address_of(key.verifying_key())))
            .unwrap_or_default();
        return Err(format!(
            "{} already holds a key{held}; keys are never overwritten: choose another file",
            path.display()
        ));
    }
    if path.exists() {
        return Err(format!(
            "{} exists and is not a key file; keys are never written over other files: choose another path",
            path.display()
        ));
    }
    let signer = NodeSigner::load_or_create(path).map_err(|e| e.to_string())?;
    println!("{}", signer.address());
    eprintln!(
        "wallet key written to {} (readable by you only). Whoever holds it spends this account's balance and claims its earnings: back it up. Next: deposit into caravan's vault on chain (`caravan chain list` names it) and make an API key with `caravan key issue --key-file {}`.",
        path.display(),
        path.display()
    );
    Ok(())
}

/// The payer's wallet and the node it talks to.
struct Payer {
    wallet: k256::ecdsa::SigningKey,
    address: Address,
    node: String,
    /// The node's own address, which every request signed for it names.
    node_address: Address,
    http: reqwest::Client,
}

impl Payer {
    fn open(args: &NodeArgs, store: &StoreArgs) -> Result<Payer, String> {
        let secret = read_secret(&args.key_file)?;
        let wallet = k256::ecdsa::SigningKey::from_bytes((&secret).into())
            .map_err(|_| "the key file does not hold a valid secp256k1 secret key".to_string())?;
        let node = args.node.trim_end_matches('/');
        let node = node.strip_suffix("/v1").unwrap_or(node).to_owned();
        let http = http_client_builder(store)?
            .timeout(Duration::from_secs(30))
            .build()
            .map_err(|e| format!("cannot make an HTTP client: {e}"))?;
        let mut payer = Payer {
            address: address_of(wallet.verifying_key()),
            wallet,
            node,
            node_address: Address::ZERO,
            http,
        };
        let identity = payer.send(reqwest::Method::GET, "/v1/node", None)?;
        payer.node_address = identity["address"]
            .as_str()
            .and_then(|text| text.parse().ok())
            .ok_or_else(|| {
                format!(
                    "{} did not say its node address (GET /v1/node answered {identity}); is it a caravan node?",
                    payer.node
                )
            })?;
        Ok(payer)
    }

    /// The payer's signature of `request`, for this node, made now.
    fn sign(&self, request: KeyRequest) -> PayerSignature {
        request.sign(&self.wallet, &self.node_address, now_ms())
    }

    /// The query string that names the payer and carries its signature of `request`.
    fn signed_query(&self, request: KeyRequest) -> String {
        self.sign(request).query(&self.address)
    }

    /// Sends a request to the node and returns its JSON answer, or the node's own error
    /// message.
    fn send(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
    ) -> Result<Value, String> {
        let url = format!("{}{path}", self.node);
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| format!("cannot start the async runtime: {e}"))?;
        runtime.block_on(async {
            let mut request = self.http.request(method, &url);
            if let Some(body) = body {
                request = request.json(&body);
            }
            let response = request.send().await.map_err(|e| {
                let causes = with_causes(&e);
                format!(
                    "cannot reach the node at {} ({causes}); is `caravan serve` running there? Give its address with --node{}",
                    self.node,
                    certificate_hint(&causes)
                )
            })?;
            let status = response.status();
            let text = response
                .text()
                .await
                .map_err(|e| format!("the node's answer was cut off: {e}"))?;
            let answer: Value = serde_json::from_str(&text).map_err(|_| {
                format!("{url} did not answer like a caravan node (HTTP {status}); check --node")
            })?;
            if status.is_success() {
                Ok(answer)
            } else {
                let message = answer["error"]["message"]
                    .as_str()
                    .map_or_else(|| answer.to_string(), str::to_owned);
                Err(format!("the node refused (HTTP {status}): {message}"))
            }
        })
    }
}

/// Signs the node's sign-in message for the key's account and prints the link that uses it.
///
/// The link carries a signed message, not a secret that lasts: the node accepts it once, within
/// the message's five minutes, and only from a form on its own pages.
pub fn login(store: &StoreArgs, args: LoginArgs) -> Result<(), String> {
    let wallet = Payer::open(&args.node, store)?;
    let mut path = format!("/v1/auth/nonce?address={}", wallet.address);
    if let Some(chain_id) = args.chain_id {
        path.push_str(&format!("&chain_id={chain_id}"));
    }
    let challenge = wallet.send(reqwest::Method::GET, &path, None)?;
    let message = challenge["message"]
        .as_str()
        .ok_or("the node's sign-in challenge holds no message to sign")?;
    let uri = challenge["uri"]
        .as_str()
        .ok_or("the node's sign-in challenge does not say its address")?
        .trim_end_matches('/');
    let signature = sign_digest(&wallet.wallet, &personal_message_digest(message.as_bytes()));
    eprintln!(
        "Open this link in your browser within five minutes to sign in as {} (it works once; anyone who opens it first signs in as you, so do not share it):",
        wallet.address
    );
    println!(
        "{uri}/sign-in/link?message={}&signature={}",
        url_encode(message),
        signature.to_hex()
    );
    Ok(())
}

fn issue(store: &StoreArgs, args: IssueArgs) -> Result<(), String> {
    let payer = Payer::open(&args.node, store)?;
    let scopes: Vec<Scope> = if args.scopes.is_empty() {
        Scope::GATEWAY.to_vec()
    } else {
        args.scopes.into_iter().map(Scope::from).collect()
    };
    let signed = payer.sign(KeyRequest::Issue {
        scopes: &scopes,
        expires_in_days: args.expires_in_days,
        name: &args.name,
    });
    let body = json!({
        "payer": payer.address,
        "scopes": scopes,
        "expires_in_days": args.expires_in_days,
        "name": args.name,
        "signed_at_ms": signed.signed_at_ms,
        "signature": signed.signature,
    });
    let issued = payer.send(reqwest::Method::POST, "/v1/keys", Some(body))?;
    let secret = issued["key"]
        .as_str()
        .ok_or("the node's answer holds no key")?;
    eprintln!(
        "API key {} for {} ({}; expires: {}). It is shown only now: keep it secret.",
        issued["id"].as_str().unwrap_or("?"),
        payer.address,
        scope_list(&issued["scopes"]),
        expiry(&issued["expires_ms"]),
    );
    println!("{secret}");
    Ok(())
}

fn list(store: &StoreArgs, args: NodeArgs) -> Result<(), String> {
    let payer = Payer::open(&args, store)?;
    let path = format!("/v1/keys?{}", payer.signed_query(KeyRequest::List));
    let listed = payer.send(reqwest::Method::GET, &path, None)?;
    let keys = listed["data"].as_array().cloned().unwrap_or_default();
    if keys.is_empty() {
        println!(
            "{} has no live API keys; `caravan key issue` makes one",
            payer.address
        );
        return Ok(());
    }
    let mut shown = table(&["id", "name", "scopes", "created", "expires"], &[]);
    for key in &keys {
        shown.add_row(vec![
            key["id"].as_str().unwrap_or("?").to_owned(),
            key["name"].as_str().unwrap_or("").to_owned(),
            scope_list(&key["scopes"]),
            key["created_ms"]
                .as_u64()
                .map_or_else(String::new, utc_time),
            expiry(&key["expires_ms"]),
        ]);
    }
    println!("{} live API keys of {}", keys.len(), payer.address);
    println!("{shown}");
    Ok(())
}

fn revoke(store: &StoreArgs, args: RevokeArgs) -> Result<(), String> {
    parse_key_id(&args.id).map_err(|malformed| malformed.to_string())?;
    let payer = Payer::open(&args.node, store)?;
    let path = format!(
        "/v1/keys/{}?{}",
        args.id,
        payer.signed_query(KeyRequest::Revoke { key: &args.id })
    );
    payer.send(reqwest::Method::DELETE, &path, None)?;
    println!(
        "revoked {} of {}: it stops working at once",
        args.id, payer.address
    );
    Ok(())
}

fn scope_list(scopes: &Value) -> String {
    let names: Vec<&str> = scopes
        .as_array()
        .map(|list| list.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    names.join(", ")
}

/// When a key expires, or `never`.
fn expiry(expires_ms: &Value) -> String {
    expires_ms.as_u64().map_or_else(|| "never".into(), utc_time)
}
