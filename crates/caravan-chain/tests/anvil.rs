//! Settlement over JSON-RPC against a real node: anvil from npm (`scripts/anvil/install.sh`),
//! started by the test on a free loopback port. Without anvil installed the tests fail, naming
//! the script that installs it (`scripts/test.sh` runs it first).

use caravan_chain::anvil::{ANVIL_CHAIN_ID, ANVIL_DEV_KEY, LocalAnvil};
use caravan_chain::chain::ChainFault;
use caravan_chain::rpc::RpcChain;
use caravan_chain::settlement::{DEV_TOKEN, EpochRoot, SettleError, Settlement};
use caravan_core::{Address, Leaf, MerkleTree};

fn leaf(name: &str, cumulative: u128) -> Leaf {
    Leaf {
        account: Address::from_label(name),
        token: Address(DEV_TOKEN.into_array()),
        cumulative,
    }
}

#[test]
fn an_epoch_settles_over_json_rpc_on_anvil() {
    let binary = caravan_chain::anvil::installed_for_tests();
    let anvil = LocalAnvil::start(&binary).unwrap();
    let records = tempfile::tempdir().unwrap();
    let connect = || Box::new(anvil.connect().unwrap());

    let mut chain = Settlement::open(records.path(), connect(), 0, 0).unwrap();
    let deployment = chain.deployment().clone();
    assert_eq!(
        deployment.token, DEV_TOKEN,
        "the same address as on the embedded chain"
    );

    let leaves = vec![leaf("ana", 700), leaf("ben", 300)];
    let tree = MerkleTree::build(&leaves);
    let first = EpochRoot {
        epoch: 1,
        root: tree.root(),
        leaves: &leaves,
    };
    chain.fund(1_000, 0).unwrap();
    let posted = chain.post(first, None, 0).unwrap();
    chain.activate(0).unwrap();
    for (i, l) in leaves.iter().enumerate() {
        chain.claim(l, &tree.proof(i), first.root, 0).unwrap();
        assert_eq!(chain.balance(l.account).unwrap(), l.cumulative);
    }
    // Claiming again pays nothing.
    chain
        .claim(&leaves[0], &tree.proof(0), first.root, 0)
        .unwrap();
    assert_eq!(
        chain.claimed(leaves[0].account, leaves[0].token).unwrap(),
        700
    );
    eprintln!("anvil: post {} gas", posted.gas_used);

    // Reopening reuses the recorded contracts instead of deploying again.
    drop(chain);
    let mut chain = Settlement::open(records.path(), connect(), 0, 0).unwrap();
    assert_eq!(chain.deployment(), &deployment);
    assert_eq!(chain.active_root().unwrap(), first.root);

    // A revert comes back decoded: nothing is pending, so there is nothing to activate.
    match chain.activate(0) {
        Err(SettleError::Transaction { why, .. }) => {
            assert!(why.contains("NothingToActivate"), "{why}")
        }
        other => panic!("expected a revert, got {other:?}"),
    }

    // A wrong chain id and an unreachable node are refused with what to check.
    match RpcChain::connect(anvil.url(), 1, ANVIL_DEV_KEY, reqwest::Client::new()) {
        Err(ChainFault::Rpc(why)) => assert!(why.contains("serves chain id 31337"), "{why}"),
        other => panic!("expected a chain-id mismatch, got {:?}", other.err()),
    }
    drop(anvil);
    match RpcChain::connect(
        "http://127.0.0.1:9",
        ANVIL_CHAIN_ID,
        ANVIL_DEV_KEY,
        reqwest::Client::new(),
    ) {
        Err(ChainFault::Rpc(why)) => assert!(why.contains("cannot reach"), "{why}"),
        other => panic!("expected an unreachable node, got {:?}", other.err()),
    }
}

/// Calls an anvil-specific JSON-RPC method (reorganise, mine) the way a test drives the node.
fn anvil_rpc(url: &str, method: &'static str, params: serde_json::Value) -> serde_json::Value {
    use alloy::providers::{Provider, ProviderBuilder};
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let provider = ProviderBuilder::new().connect_http(url.parse().unwrap());
    runtime
        .block_on(provider.raw_request::<_, serde_json::Value>(method.into(), params))
        .unwrap()
}

fn block_number(url: &str) -> u64 {
    let hex = anvil_rpc(url, "eth_blockNumber", serde_json::json!([]));
    u64::from_str_radix(hex.as_str().unwrap().trim_start_matches("0x"), 16).unwrap()
}

#[test]
fn a_post_a_reorganisation_removed_is_not_taken_as_done_and_posts_again() {
    let binary = caravan_chain::anvil::installed_for_tests();
    let anvil = LocalAnvil::start(&binary).unwrap();
    let url = anvil.url().to_owned();
    let records = tempfile::tempdir().unwrap();
    let mut chain =
        Settlement::open(records.path(), Box::new(anvil.connect().unwrap()), 0, 0).unwrap();
    let leaves = vec![leaf("ana", 700)];
    let tree = MerkleTree::build(&leaves);
    let first = EpochRoot {
        epoch: 1,
        root: tree.root(),
        leaves: &leaves,
    };
    chain.fund(700, 0).unwrap();
    chain.post(first, None, 0).unwrap();
    assert_eq!(chain.epochs().unwrap().1, 1, "posted and pending");

    // The block holding the post is replaced by an empty one: the chain no longer has it, and
    // nothing local says otherwise, so posting again simply works.
    anvil_rpc(&url, "anvil_reorg", serde_json::json!([1, []]));
    assert_eq!(
        chain.epochs().unwrap().1,
        0,
        "the reorganisation removed the post"
    );
    chain.post(first, None, 0).unwrap();
    chain.activate(0).unwrap();
    chain
        .claim(&leaves[0], &tree.proof(0), first.root, 0)
        .unwrap();
    assert_eq!(chain.balance(leaves[0].account).unwrap(), 700);

    // With three confirmations a transaction is done only under two more blocks: funding (an
    // approval, then the transfer in) spans at least six blocks while a miner adds blocks.
    let mut careful = Settlement::open(
        records.path(),
        Box::new(anvil.connect().unwrap().with_confirmations(3)),
        0,
        0,
    )
    .unwrap();
    let mining = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(true));
    let miner = {
        let (url, mining) = (url.clone(), mining.clone());
        std::thread::spawn(move || {
            while mining.load(std::sync::atomic::Ordering::Relaxed) {
                std::thread::sleep(std::time::Duration::from_millis(150));
                anvil_rpc(&url, "evm_mine", serde_json::json!([]));
            }
        })
    };
    let before = block_number(&url);
    careful.fund(1, 0).unwrap();
    let after = block_number(&url);
    mining.store(false, std::sync::atomic::Ordering::Relaxed);
    miner.join().unwrap();
    assert!(
        after >= before + 6,
        "two transactions, each under two more blocks: {before} → {after}"
    );
    assert_eq!(careful.funded(leaves[0].token).unwrap(), 701);
}

/// A client trusting the system's certificate authorities plus the PEM certificate `ca`.
fn trusting(ca: &str) -> reqwest::Client {
    let roots = reqwest::Certificate::from_pem_bundle(ca.as_bytes()).unwrap();
    reqwest::Client::builder()
        .tls_certs_merge(roots)
        .build()
        .unwrap()
}

#[test]
fn a_chain_behind_https_settles_when_its_authority_is_trusted_and_is_refused_otherwise() {
    let binary = caravan_chain::anvil::installed_for_tests();
    let anvil = LocalAnvil::start(&binary).unwrap();
    let fronts = tokio::runtime::Runtime::new().unwrap();
    let front = fronts.block_on(caravan_testkit::TlsFront::start(anvil.address()));
    let url = front.url("");

    // Nothing on this machine vouches for the test's authority: the connection is refused and
    // the message says why and what to do.
    match RpcChain::connect(&url, ANVIL_CHAIN_ID, ANVIL_DEV_KEY, reqwest::Client::new()) {
        Err(ChainFault::Rpc(why)) => {
            assert!(why.contains("certificate"), "{why}");
            assert!(why.contains("--extra-ca-certs"), "{why}");
        }
        other => panic!("expected an untrusted certificate, got {:?}", other.err()),
    }

    // Trusting it, a whole epoch settles over HTTPS.
    let connected = RpcChain::connect(
        &url,
        ANVIL_CHAIN_ID,
        ANVIL_DEV_KEY,
        trusting(front.ca_pem()),
    )
    .unwrap();
    let records = tempfile::tempdir().unwrap();
    let mut chain = Settlement::open(records.path(), Box::new(connected), 0, 0).unwrap();
    let leaves = vec![leaf("ana", 700), leaf("ben", 300)];
    let tree = MerkleTree::build(&leaves);
    let root = EpochRoot {
        epoch: 1,
        root: tree.root(),
        leaves: &leaves,
    };
    chain.fund(1_000, 0).unwrap();
    chain.post(root, None, 0).unwrap();
    chain.activate(0).unwrap();
    chain
        .claim(&leaves[1], &tree.proof(1), tree.root(), 0)
        .unwrap();
    assert_eq!(chain.balance(leaves[1].account).unwrap(), 300);

    // A URL that is not HTTP is refused before anything is sent.
    match RpcChain::connect(
        "ws://127.0.0.1:8545",
        ANVIL_CHAIN_ID,
        ANVIL_DEV_KEY,
        reqwest::Client::new(),
    ) {
        Err(ChainFault::Rpc(why)) => assert!(why.contains("https://"), "{why}"),
        other => panic!("expected a refused scheme, got {:?}", other.err()),
    }
}

/// The one transaction waiting in anvil's mempool: its hash, nonce and fee cap.
fn waiting_transaction(url: &str) -> Option<(String, u64, u128)> {
    let pool = anvil_rpc(url, "txpool_content", serde_json::json!([]));
    let by_sender = pool["pending"].as_object()?;
    let transactions: Vec<&serde_json::Value> = by_sender
        .values()
        .flat_map(|by_nonce| by_nonce.as_object().into_iter().flat_map(|m| m.values()))
        .collect();
    assert!(transactions.len() <= 1, "{pool}");
    let transaction = transactions.first()?;
    let number = |field: &str| {
        u128::from_str_radix(
            transaction[field]
                .as_str()
                .unwrap()
                .trim_start_matches("0x"),
            16,
        )
        .unwrap()
    };
    Some((
        transaction["hash"].as_str().unwrap().to_owned(),
        number("nonce") as u64,
        number("maxFeePerGas"),
    ))
}

/// Waits (up to 30 s) until `done` says yes about the mempool's waiting transaction.
fn wait_for_pool(
    url: &str,
    done: impl Fn(Option<&(String, u64, u128)>) -> bool,
) -> Option<(String, u64, u128)> {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    loop {
        let waiting = waiting_transaction(url);
        if done(waiting.as_ref()) {
            return waiting;
        }
        assert!(std::time::Instant::now() < deadline, "{waiting:?}");
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
}

#[test]
fn a_transaction_a_stopped_run_left_waiting_is_replaced_and_a_stuck_one_is_resent_with_higher_fees()
{
    use alloy::network::{EthereumWallet, TransactionBuilder};
    use alloy::providers::{Provider, ProviderBuilder};
    use alloy::rpc::types::TransactionRequest;
    use caravan_chain::chain::Chain;
    use std::future::IntoFuture;
    let binary = caravan_chain::anvil::installed_for_tests();
    let anvil = LocalAnvil::start(&binary).unwrap();
    let url = anvil.url().to_owned();
    let payee = alloy_primitives::Address::repeat_byte(0x42);
    anvil_rpc(&url, "evm_setAutomine", serde_json::json!([false]));

    // A run that stopped left a transaction at nonce 0 in the mempool, paying twice what the
    // chain asks now: a new transaction takes its nonce and outbids it.
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let signer: alloy::signers::local::PrivateKeySigner = ANVIL_DEV_KEY.parse().unwrap();
    let sender = signer.address();
    let wallet = ProviderBuilder::new()
        .wallet(EthereumWallet::from(signer))
        .connect_http(url.parse().unwrap());
    let estimate = runtime.block_on(wallet.estimate_eip1559_fees()).unwrap();
    let left = TransactionRequest::default()
        .with_from(sender)
        .with_to(payee)
        .with_nonce(0)
        .with_gas_limit(21_000)
        .with_max_fee_per_gas(2 * estimate.max_fee_per_gas)
        .with_max_priority_fee_per_gas(2 * estimate.max_priority_fee_per_gas);
    let left = *runtime
        .block_on(wallet.send_transaction(left))
        .unwrap()
        .tx_hash();
    let stale = wait_for_pool(&url, |w| w.is_some()).unwrap();
    assert_eq!(stale.0, left.to_string());

    let sending = {
        let chain = anvil.connect().unwrap();
        std::thread::spawn(move || {
            let mut chain = chain;
            chain.send(0, Some(payee), alloy_primitives::Bytes::new())
        })
    };
    let replacement = wait_for_pool(&url, |w| w.is_some_and(|w| w.0 != stale.0)).unwrap();
    assert_eq!(replacement.1, 0, "the replacement takes the stale nonce");
    assert!(
        replacement.2 * 10 > stale.2 * 11,
        "{replacement:?} {stale:?}"
    );
    anvil_rpc(&url, "evm_mine", serde_json::json!([]));
    let receipt = sending.join().unwrap().unwrap().unwrap();
    assert_eq!(receipt.gas_used, 21_000);
    let left_receipt = runtime
        .block_on(wallet.get_transaction_receipt(left))
        .unwrap();
    assert!(left_receipt.is_none(), "the stale transaction never lands");
    assert_eq!(
        runtime
            .block_on(wallet.get_transaction_count(sender).into_future())
            .unwrap(),
        1
    );

    // A transaction that goes unmined is sent again, same nonce, higher fees; the resend is
    // what lands.
    let sending = {
        let chain = anvil
            .connect()
            .unwrap()
            .with_resend_after(std::time::Duration::from_millis(500));
        std::thread::spawn(move || {
            let mut chain = chain;
            chain.send(0, Some(payee), alloy_primitives::Bytes::new())
        })
    };
    let first = wait_for_pool(&url, |w| w.is_some()).unwrap();
    assert_eq!(first.1, 1);
    let resent = wait_for_pool(&url, |w| w.is_some_and(|w| w.0 != first.0)).unwrap();
    assert_eq!(resent.1, 1, "resent at the same nonce");
    assert!(resent.2 > first.2, "{resent:?} {first:?}");
    anvil_rpc(&url, "evm_mine", serde_json::json!([]));
    sending.join().unwrap().unwrap().unwrap();
    let first_hash: alloy_primitives::B256 = first.0.parse().unwrap();
    assert!(
        runtime
            .block_on(wallet.get_transaction_receipt(first_hash))
            .unwrap()
            .is_none()
    );
    assert_eq!(
        runtime
            .block_on(wallet.get_transaction_count(sender).into_future())
            .unwrap(),
        2
    );
}

/// An OwnedWallet for `owner`, deployed on `chain`.
fn deploy_wallet(chain: &mut RpcChain, owner: Address) -> alloy_primitives::Address {
    use alloy_sol_types::SolConstructor;
    use caravan_chain::chain::Chain;
    use caravan_chain::contracts::OwnedWallet;
    let mut code = OwnedWallet::BYTECODE.to_vec();
    code.extend(
        OwnedWallet::constructorCall {
            owner_: alloy_primitives::Address::from(owner.0),
        }
        .abi_encode(),
    );
    chain
        .send(0, None, code.into())
        .unwrap()
        .unwrap()
        .created
        .unwrap()
}

#[test]
fn a_contract_wallet_accepts_only_its_owners_signatures_read_from_the_chain() {
    use caravan_chain::rpc::contract_accepts;
    use caravan_core::attestation::{address_of, sign_digest};
    let binary = caravan_chain::anvil::installed_for_tests();
    let anvil = LocalAnvil::start(&binary).unwrap();
    let key = |label: &str| {
        k256::ecdsa::SigningKey::from_bytes((&caravan_core::keccak256(label.as_bytes()).0).into())
            .unwrap()
    };
    let (owner, stranger) = (key("owner"), key("stranger"));
    let wallet = deploy_wallet(
        &mut anvil.connect().unwrap(),
        address_of(owner.verifying_key()),
    );
    let digest = caravan_core::keccak256(b"sign in to caravan");
    let accepts = |wallet, signer: &k256::ecdsa::SigningKey| {
        let signature = sign_digest(signer, &digest);
        contract_accepts(
            anvil.url(),
            reqwest::Client::new(),
            wallet,
            alloy_primitives::B256::from(digest.0),
            &signature.0,
        )
    };
    assert_eq!(accepts(wallet, &owner), Ok(true));
    assert_eq!(accepts(wallet, &stranger), Ok(false));
    // An account with no code answers nothing, which accepts nothing.
    let plain = alloy_primitives::Address::from(address_of(owner.verifying_key()).0);
    assert_eq!(accepts(plain, &owner), Ok(false));
    let malformed = contract_accepts(
        anvil.url(),
        reqwest::Client::new(),
        wallet,
        alloy_primitives::B256::from(digest.0),
        &[1, 2, 3],
    );
    assert_eq!(malformed, Ok(false));
    // A chain that cannot be reached is an error that names it, not a refusal.
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let url = format!("http://{closed}");
    let unreachable = contract_accepts(
        &url,
        reqwest::Client::new(),
        wallet,
        alloy_primitives::B256::from(digest.0),
        &sign_digest(&owner, &digest).0,
    )
    .unwrap_err();
    assert!(unreachable.contains(&url), "{unreachable}");
}
