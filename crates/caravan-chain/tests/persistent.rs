//! The embedded chain survives a restart: its journal replays to the same state.

use alloy_primitives::{Address, U256, keccak256};
use alloy_sol_types::{SolCall, SolConstructor};
use caravan_chain::contracts::CaravanToken;
use caravan_chain::persistent::{PersistentEvm, StoreError};

fn who(label: &str) -> Address {
    Address::from_slice(&keccak256(label.as_bytes())[12..])
}

fn balance(chain: &mut PersistentEvm, token: Address, account: Address) -> U256 {
    let out = chain
        .call(
            token,
            CaravanToken::balanceOfCall(account).abi_encode().into(),
        )
        .unwrap();
    CaravanToken::balanceOfCall::abi_decode_returns(&out).unwrap()
}

#[test]
fn a_reopened_chain_has_the_same_contracts_and_balances() {
    let dir = tempfile::tempdir().unwrap();
    let holder = who("holder");
    let token = {
        let mut chain = PersistentEvm::open(dir.path()).unwrap();
        let token = deploy_token(&mut chain, holder, 1_000);
        transfer(&mut chain, token, holder, "alice", 250);
        // A reverted transaction is journaled too and replays to the same (failed) outcome.
        let too_much = CaravanToken::transferCall {
            to: who("bob"),
            value: U256::from(5_000u64),
        };
        assert!(
            chain
                .send(300, holder, Some(token), too_much.abi_encode().into())
                .unwrap()
                .is_err()
        );
        token
    };
    let mut reopened = PersistentEvm::open(dir.path()).unwrap();
    assert!(
        matches!(PersistentEvm::open(dir.path()), Err(StoreError::Busy(_))),
        "a second opener is refused while the first holds the chain"
    );
    assert_eq!(reopened.transactions(), 3);
    assert_eq!(reopened.timestamp(), 300);
    assert!(reopened.has_code(token));
    assert_eq!(
        balance(&mut reopened, token, who("alice")),
        U256::from(250u64)
    );
    assert_eq!(balance(&mut reopened, token, holder), U256::from(750u64));
    assert_eq!(balance(&mut reopened, token, who("bob")), U256::ZERO);

    drop(reopened);
    std::fs::write(
        dir.path().join("transactions.jsonl"),
        "{\"at\": 1}\nnot json\n",
    )
    .unwrap();
    match PersistentEvm::open(dir.path()) {
        Err(StoreError::Damaged { line: 1, .. }) => {}
        other => panic!(
            "expected a damaged journal at line 1, got {:?}",
            other.err()
        ),
    }
}

/// Deploys a token of `supply` held by `holder` at time 100.
fn deploy_token(chain: &mut PersistentEvm, holder: Address, supply: u64) -> Address {
    let mut code = CaravanToken::BYTECODE.to_vec();
    code.extend(
        CaravanToken::constructorCall {
            name_: "Test".into(),
            symbol_: "TST".into(),
            decimals_: 6,
            holder,
            supply: U256::from(supply),
        }
        .abi_encode(),
    );
    chain
        .send(100, holder, None, code.into())
        .unwrap()
        .unwrap()
        .created
        .unwrap()
}

fn transfer(chain: &mut PersistentEvm, token: Address, from: Address, to: &str, value: u64) {
    let call = CaravanToken::transferCall {
        to: who(to),
        value: U256::from(value),
    };
    chain
        .send(200, from, Some(token), call.abi_encode().into())
        .unwrap()
        .unwrap();
}

/// A chain in `dir` whose journal holds a token of 1,000 deployed by `holder` and a transfer of
/// 100 of it to alice; the chain is let go before this returns the token.
fn token_with_alice_paid(dir: &std::path::Path, holder: Address) -> Address {
    let mut chain = PersistentEvm::open(dir).unwrap();
    let token = deploy_token(&mut chain, holder, 1_000);
    transfer(&mut chain, token, holder, "alice", 100);
    token
}

fn journal_of(dir: &std::path::Path) -> String {
    std::fs::read_to_string(dir.join("transactions.jsonl")).unwrap()
}

/// A process keeps the state it replayed between opens, so it must still see what another
/// process appended to the journal meanwhile, and must not take a replaced journal for the one
/// it replayed.
#[test]
fn a_reopened_chain_sees_what_another_process_appended_and_a_replaced_journal_is_replayed_whole() {
    let here = tempfile::tempdir().unwrap();
    let elsewhere = tempfile::tempdir().unwrap();
    let holder = who("holder");
    let token = token_with_alice_paid(here.path(), holder);
    // Another process, working on a copy of the same journal, appends one transfer; its line
    // lands at the end of this journal as that process's own append would.
    std::fs::write(
        elsewhere.path().join("transactions.jsonl"),
        journal_of(here.path()),
    )
    .unwrap();
    {
        let mut other = PersistentEvm::open(elsewhere.path()).unwrap();
        transfer(&mut other, token, holder, "bob", 30);
    }
    let appended = journal_of(elsewhere.path())
        .lines()
        .last()
        .unwrap()
        .to_owned();
    let mut journal = std::fs::OpenOptions::new()
        .append(true)
        .open(here.path().join("transactions.jsonl"))
        .unwrap();
    std::io::Write::write_all(&mut journal, format!("{appended}\n").as_bytes()).unwrap();
    drop(journal);

    let mut reopened = PersistentEvm::open(here.path()).unwrap();
    assert_eq!(reopened.transactions(), 3);
    assert_eq!(balance(&mut reopened, token, who("bob")), U256::from(30u64));
    assert_eq!(balance(&mut reopened, token, holder), U256::from(870u64));
    transfer(&mut reopened, token, holder, "carol", 5);
    drop(reopened);

    // The journal is replaced by one as long that tells another story: alice got 100 and
    // then 400, and nobody else anything. The reopened chain is that story, not the one kept.
    let mut replaced = String::new();
    {
        let story = tempfile::tempdir().unwrap();
        let mut chain = PersistentEvm::open(story.path()).unwrap();
        let same = deploy_token(&mut chain, holder, 1_000);
        assert_eq!(
            same, token,
            "the same deployer and nonce give the same address"
        );
        transfer(&mut chain, token, holder, "alice", 100);
        transfer(&mut chain, token, holder, "alice", 400);
        transfer(&mut chain, token, holder, "alice", 1);
        replaced.push_str(&journal_of(story.path()));
    }
    std::fs::write(here.path().join("transactions.jsonl"), &replaced).unwrap();
    let mut reopened = PersistentEvm::open(here.path()).unwrap();
    assert_eq!(reopened.transactions(), 4);
    assert_eq!(
        balance(&mut reopened, token, who("alice")),
        U256::from(501u64)
    );
    assert_eq!(balance(&mut reopened, token, who("bob")), U256::ZERO);
    assert_eq!(balance(&mut reopened, token, who("carol")), U256::ZERO);
}

/// An append cut short (a full disk, a power cut) leaves a last line without its newline. Its
/// transaction was never acknowledged: the chain opens without it, and the next transaction is
/// journaled where it began, so the journal replays whole.
#[test]
fn a_journal_whose_last_append_was_cut_short_opens_without_it_and_goes_on() {
    let dir = tempfile::tempdir().unwrap();
    let holder = who("holder");
    let token = token_with_alice_paid(dir.path(), holder);
    let journal = dir.path().join("transactions.jsonl");
    let whole = journal_of(dir.path());
    let cut = whole.lines().last().unwrap();
    std::fs::write(&journal, format!("{whole}{}", &cut[..cut.len() / 2])).unwrap();
    {
        let mut chain = PersistentEvm::open(dir.path()).unwrap();
        assert_eq!(chain.transactions(), 2);
        transfer(&mut chain, token, holder, "bob", 7);
    }
    // Read by a process that never held it (a copy, so nothing is kept from before).
    let copy = tempfile::tempdir().unwrap();
    std::fs::copy(&journal, copy.path().join("transactions.jsonl")).unwrap();
    let mut fresh = PersistentEvm::open(copy.path()).unwrap();
    assert_eq!(fresh.transactions(), 3);
    assert_eq!(balance(&mut fresh, token, who("alice")), U256::from(100u64));
    assert_eq!(balance(&mut fresh, token, who("bob")), U256::from(7u64));
}
