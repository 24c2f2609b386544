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
        let mut code = CaravanToken::BYTECODE.to_vec();
        code.extend(
            CaravanToken::constructorCall {
                name_: "Test".into(),
                symbol_: "TST".into(),
                decimals_: 6,
                holder,
                supply: U256::from(1_000u64),
            }
            .abi_encode(),
        );
        let deployed = chain.send(100, holder, None, code.into()).unwrap().unwrap();
        let token = deployed.created.unwrap();
        let transfer = CaravanToken::transferCall {
            to: who("alice"),
            value: U256::from(250u64),
        };
        chain
            .send(200, holder, Some(token), transfer.abi_encode().into())
            .unwrap()
            .unwrap();
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
