//! Money comes in on chain: a deposit into caravan's vault is credited to the account it names
//! once its block has the chain's confirmations, exactly once — across restarts, after the
//! follower forgets how far it read, and never for a deposit the chain dropped before it was
//! confirmed. On the embedded chain and on anvil (`scripts/anvil/install.sh`, which
//! `scripts/test.sh` runs first).

mod common;

use std::io::{Read, Write};
use std::sync::Arc;

use caravan_chain::anvil::{ANVIL_CHAIN_ID, LocalAnvil};
use caravan_chain::embedded::EMBEDDED_CHAIN_ID;
use caravan_chain::settlement::Settlement;
use caravan_core::{AccountRef, Address};
use caravan_node::deposits::DepositFollower;
use caravan_node::settlement::{Chains, EMBEDDED, RpcConfig};
use caravan_store::SharedJournal;
use common::{dev_token, started_store};

/// A store with the development token registered, and the chains folder beside it.
fn node_store(dir: &std::path::Path) -> (Arc<SharedJournal>, Arc<Chains>) {
    let journal = started_store(dir, Vec::new());
    let chains = Chains::new(dir.join("chains"), reqwest::Client::new());
    (Arc::new(SharedJournal::new(journal)), Arc::new(chains))
}

fn prepaid(journal: &SharedJournal, account: Address) -> u128 {
    journal.read(|j| {
        j.economy()
            .ledger()
            .balance(&AccountRef::Payer(account), &dev_token())
            .available()
    })
}

#[test]
fn a_deposit_on_the_embedded_chain_is_credited_once() {
    let dir = tempfile::tempdir().unwrap();
    let (journal, chains) = node_store(dir.path());
    let payer = Address::from_label("payer");
    let follower = DepositFollower::new(Arc::clone(&chains), Arc::clone(&journal));
    assert!(
        follower.follow_once().credited.is_empty(),
        "nothing is deployed, nothing is credited"
    );
    chains
        .open(EMBEDDED, 0)
        .unwrap()
        .deposit(dev_token(), 2_500_000, payer, 1)
        .unwrap();

    let followed = follower.follow_once();
    assert!(followed.failures.is_empty(), "{:?}", followed.failures);
    assert_eq!(followed.credited.len(), 1);
    let credited = &followed.credited[0];
    assert_eq!(credited.deposit.chain_id, EMBEDDED_CHAIN_ID);
    assert_eq!(credited.deposit.account, payer);
    assert_eq!(credited.deposit.amount, 2_500_000);
    assert_eq!(prepaid(&journal, payer), 2_500_000);

    assert!(follower.follow_once().credited.is_empty());
    let restarted = DepositFollower::new(Arc::clone(&chains), Arc::clone(&journal));
    std::fs::remove_file(chains.chain_dir(EMBEDDED).join("deposits.next-block")).unwrap();
    assert!(
        restarted.follow_once().credited.is_empty(),
        "reading the chain again from its first block credits nothing twice"
    );
    assert_eq!(prepaid(&journal, payer), 2_500_000);
}

/// One JSON-RPC call to anvil's own methods (mining, snapshots), over plain HTTP.
fn anvil_rpc(anvil: &LocalAnvil, method: &str, params: serde_json::Value) -> serde_json::Value {
    let body = serde_json::json!({ "jsonrpc": "2.0", "id": 1, "method": method, "params": params })
        .to_string();
    let mut stream = std::net::TcpStream::connect(anvil.address()).unwrap();
    write!(
        stream,
        "POST / HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut answer = String::new();
    stream.read_to_string(&mut answer).unwrap();
    let json = &answer[answer.find("\r\n\r\n").unwrap() + 4..];
    let reply: serde_json::Value = serde_json::from_str(json.trim()).unwrap();
    assert!(reply.get("error").is_none(), "{method}: {reply}");
    reply["result"].clone()
}

#[test]
fn a_deposit_on_anvil_waits_for_its_confirmations_survives_a_restart_and_a_dropped_one_is_never_credited()
 {
    let binary = caravan_chain::anvil::installed_for_tests();
    let anvil = LocalAnvil::start(&binary).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let (journal, chains) = node_store(dir.path());
    // SAFETY: this test binary's only other test never reads the environment.
    unsafe {
        std::env::set_var(
            "CARAVAN_TEST_DEPOSIT_KEY",
            caravan_chain::anvil::ANVIL_DEV_KEY,
        )
    };
    chains
        .add(
            "local",
            RpcConfig {
                url: anvil.url().into(),
                chain_id: ANVIL_CHAIN_ID,
                key_env: "CARAVAN_TEST_DEPOSIT_KEY".into(),
                confirmations: 2,
            },
        )
        .unwrap();
    // The payer's own transactions (a wallet's) do not wait for the node's confirmations.
    let wallet = || {
        Settlement::open(
            &chains.chain_dir("local"),
            Box::new(anvil.connect().unwrap()),
            0,
            0,
        )
        .unwrap()
    };
    let payer = Address::from_label("payer");
    let mine = |blocks: u64| anvil_rpc(&anvil, "anvil_mine", serde_json::json!([blocks]));

    wallet().deposit(dev_token(), 4_000_000, payer, 0).unwrap();
    let follower = DepositFollower::new(Arc::clone(&chains), Arc::clone(&journal));
    let seen_unconfirmed = follower.follow_once();
    assert!(
        seen_unconfirmed.failures.is_empty(),
        "{:?}",
        seen_unconfirmed.failures
    );
    assert!(
        seen_unconfirmed.credited.is_empty(),
        "one block is not the two confirmations the chain asks for"
    );
    drop(follower);

    let restarted = DepositFollower::new(Arc::clone(&chains), Arc::clone(&journal));
    mine(1);
    let confirmed = restarted.follow_once();
    assert!(confirmed.failures.is_empty(), "{:?}", confirmed.failures);
    assert_eq!(confirmed.credited.len(), 1);
    let credited = &confirmed.credited[0].deposit;
    assert_eq!(
        (credited.chain_id, credited.account, credited.amount),
        (ANVIL_CHAIN_ID, payer, 4_000_000)
    );
    assert_eq!(
        confirmed.credited[0].from,
        Address(caravan_chain::embedded::DEV_DEPLOYER.into_array())
    );
    assert_eq!(prepaid(&journal, payer), 4_000_000);
    mine(3);
    assert!(restarted.follow_once().credited.is_empty());

    let before_the_fork = anvil_rpc(&anvil, "evm_snapshot", serde_json::json!([]));
    wallet().deposit(dev_token(), 7_000_000, payer, 0).unwrap();
    assert!(restarted.follow_once().credited.is_empty());
    anvil_rpc(&anvil, "evm_revert", serde_json::json!([before_the_fork]));
    mine(3);
    let after_the_fork = restarted.follow_once();
    assert!(
        after_the_fork.failures.is_empty(),
        "{:?}",
        after_the_fork.failures
    );
    assert!(
        after_the_fork.credited.is_empty(),
        "a deposit the chain dropped before its confirmations is never credited"
    );
    assert_eq!(prepaid(&journal, payer), 4_000_000);

    std::fs::remove_file(chains.chain_dir("local").join("deposits.next-block")).unwrap();
    assert!(
        restarted.follow_once().credited.is_empty(),
        "reading the chain again from its first block credits nothing twice"
    );
    assert_eq!(prepaid(&journal, payer), 4_000_000);
}
