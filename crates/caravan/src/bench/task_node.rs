//! What the task benchmarks share: a node over a fresh store with a funded requester and the
//! spec they post, and contributors who sign in with their wallets as a browser does.

use std::sync::Arc;

use caravan_core::attestation::{address_of, personal_message_digest, sign_digest};
use caravan_core::{Address, Event, Genesis, Ppm, Token, keccak256};
use caravan_node::Node;
use caravan_node::gateway::receipt::NodeSigner;
use caravan_node::sessions::SignInPolicy;
use caravan_node::sessions::origin::PublicOrigin;
use caravan_store::{Journal, Location};
use caravan_tasks::inference::Method;
use caravan_tasks::project::{Overlap, ProjectSpec, QueueOrder};
use caravan_tasks::schema::LabelSchema;

/// A node over a fresh store at `location` whose requester holds an unlimited deposit of the
/// bench token, and the single-choice spec the task benchmarks post.
pub(super) struct BenchNode {
    pub(super) node: Arc<Node>,
    pub(super) requester: Address,
    pub(super) spec: ProjectSpec,
    /// Holds the node's model folder, when the bench made one.
    pub(super) _scratch: Option<tempfile::TempDir>,
}

pub(super) fn open_bench_node(location: &Location) -> Result<BenchNode, String> {
    let token = Token {
        address: Address::from_label("bench token"),
        symbol: "TKN".into(),
        decimals: 6,
    };
    let scratch = tempfile::tempdir().map_err(|e| format!("cannot make a scratch folder: {e}"))?;
    let mut journal = Journal::open(location.clone(), &mut |_, _| {}).map_err(|e| e.to_string())?;
    journal
        .submit(vec![
            Event::Genesis(Genesis {
                treasury: Address::from_label("bench treasury"),
                protocol_fee: Ppm::ZERO,
            }),
            Event::TokenRegistered(token.clone()),
        ])
        .map_err(|e| e.to_string())?;
    let mut bench = open_bench_node_at(
        journal,
        caravan_models::ArtifactStore::new(scratch.path().join("models")),
        NodeSigner::generate(),
        token.address,
    )?;
    bench._scratch = Some(scratch);
    Ok(bench)
}

/// [`open_bench_node`] over a journal that already has its genesis and `token`: funds the
/// requester and opens the node with `artifacts` and `signer`.
pub(super) fn open_bench_node_at(
    mut journal: Journal,
    artifacts: caravan_models::ArtifactStore,
    signer: NodeSigner,
    token: Address,
) -> Result<BenchNode, String> {
    let requester = Address::from_label("bench requester");
    journal
        .submit(vec![Event::Deposited {
            payer: requester,
            token,
            amount: u128::from(u64::MAX),
        }])
        .map_err(|e| e.to_string())?;
    let origin = PublicOrigin::parse(caravan_node::DEFAULT_PUBLIC_URL).expect("the default parses");
    let node = Arc::new(
        Node::builder(journal, artifacts, signer)
            .sign_in(SignInPolicy {
                origin,
                chain_ids: vec![caravan_chain::embedded::EMBEDDED_CHAIN_ID],
            })
            .open()
            .map_err(|e| e.to_string())?,
    );
    let spec = ProjectSpec {
        title: "bench: pick the topic".into(),
        instructions: String::new(),
        schema: LabelSchema::SingleChoice {
            options: ["sports", "politics", "science", "arts"]
                .map(String::from)
                .to_vec(),
        },
        overlap: Overlap {
            min: 3,
            max: 5,
            confidence: 0.9,
        },
        token,
        bounty: 1_000,
        budget: u128::from(u64::MAX),
        gold_rate: Ppm::new(50_000).expect("5%"),
        exam: None,
        skill_bar: Ppm::new(300_000).expect("30%"),
        gold_grace: 10,
        min_seconds_per_item: 0,
        daily_cap: 1_000_000,
        deadline_ms: u64::MAX,
        lease_seconds: 600,
        order: QueueOrder::ImportOrder,
        method: Method::DawidSkene,
    };
    Ok(BenchNode {
        node,
        requester,
        spec,
        _scratch: None,
    })
}

pub(super) fn wallet(label: &str) -> k256::ecdsa::SigningKey {
    k256::ecdsa::SigningKey::from_bytes((&keccak256(label.as_bytes()).0).into())
        .expect("a keccak digest is a secp256k1 secret key but for odds of 2^-128")
}

/// Signs the wallet in as a browser does (the node's challenge, the wallet's `personal_sign`,
/// the node's checks) and returns the session's secret id.
pub(super) fn sign_in(node: &Node, wallet: &k256::ecdsa::SigningKey) -> Result<String, String> {
    let sessions = node.sessions();
    let challenge = sessions.challenge().map_err(|e| e.to_string())?;
    let message = challenge
        .message(
            &address_of(wallet.verifying_key()),
            caravan_chain::embedded::EMBEDDED_CHAIN_ID,
        )
        .to_string();
    let signature = sign_digest(wallet, &personal_message_digest(message.as_bytes()));
    let opened = sessions
        .sign_in(&message, &signature.to_hex())
        .map_err(|e| e.to_string())?;
    Ok(opened.secret)
}
