//! A project's budget comes out of the requester's prepaid balance, never from nothing, and never
//! out of money a call in flight holds.

use std::sync::Arc;

use caravan_core::{AccountRef, Address, Event, Genesis, Ppm, Token};
use caravan_node::desk::{Desk, DeskError};
use caravan_node::meter::Meter;
use caravan_store::{Journal, Location, SharedJournal, now_ms};
use caravan_tasks::project::ProjectSpec;
use serde_json::json;

fn usdc() -> Token {
    Token {
        address: Address::from_label("usdc"),
        symbol: "USDC".into(),
        decimals: 6,
    }
}

fn spec(budget: u128) -> ProjectSpec {
    serde_json::from_value(json!({
        "title": "Sentiment",
        "instructions": "Pick one.",
        "schema": { "type": "single_choice", "options": ["pos", "neg"] },
        "overlap": { "min": 1, "max": 1, "confidence": 0.9 },
        "token": usdc().address,
        "bounty": "10",
        "budget": budget.to_string(),
        "gold_rate": 0,
        "skill_bar": 0,
        "gold_grace": 3,
        "min_seconds_per_item": 0,
        "daily_cap": 1000,
        "deadline_ms": u64::MAX,
        "lease_seconds": 600,
        "method": "mv"
    }))
    .unwrap()
}

#[test]
fn a_budget_is_escrowed_only_from_prepaid_money_no_call_in_flight_holds() {
    let dir = tempfile::tempdir().unwrap();
    let requester = Address::from_label("requester");
    let mut journal =
        Journal::open(Location::DataDir(dir.path().to_owned()), &mut |_, _| {}).unwrap();
    journal
        .submit(vec![
            Event::Genesis(Genesis {
                treasury: Address::from_label("treasury"),
                protocol_fee: Ppm::ZERO,
            }),
            Event::TokenRegistered(usdc()),
        ])
        .unwrap();
    let journal = Arc::new(SharedJournal::new(journal));
    let meter = Arc::new(Meter::default());
    let desk = Desk::over(Arc::clone(&journal), Arc::clone(&meter), Arc::new(now_ms)).unwrap();

    let refused = desk
        .create_project(requester, spec(50_000_000))
        .unwrap_err();
    assert!(
        matches!(refused, DeskError::InsufficientBalance { available: 0, .. }),
        "{refused}"
    );
    assert!(
        refused
            .to_string()
            .contains("Deposit at least 50 USDC more"),
        "{refused}"
    );
    journal
        .submit(vec![Event::Deposited {
            payer: requester,
            token: usdc().address,
            amount: 80_000_000,
        }])
        .unwrap();
    // A call in flight holds 40 of the 80: a 50 budget does not fit beside it.
    let call = meter
        .reserve(&journal, requester, usdc().address, 40_000_000)
        .unwrap();
    let refused = desk
        .create_project(requester, spec(50_000_000))
        .unwrap_err();
    assert!(
        refused.to_string().contains("40 USDC is available"),
        "{refused}"
    );
    drop(call);
    let project = desk.create_project(requester, spec(50_000_000)).unwrap();
    let balance = |account| {
        journal.read(|j| {
            j.economy()
                .ledger()
                .balance(&account, &usdc().address)
                .signed()
        })
    };
    assert_eq!(balance(AccountRef::Payer(requester)), 30_000_000);
    assert_eq!(balance(AccountRef::Escrow(project.0)), 50_000_000);
    assert_eq!(
        balance(AccountRef::External(requester)),
        -80_000_000,
        "only the deposit came from outside"
    );
    // The escrow is durable: a reopened store has it.
    drop(desk);
    let journal = Arc::try_unwrap(journal).ok().unwrap().into_inner();
    drop(journal);
    let journal = Journal::open(Location::DataDir(dir.path().to_owned()), &mut |_, _| {}).unwrap();
    assert_eq!(
        journal
            .economy()
            .ledger()
            .balance(&AccountRef::Escrow(project.0), &usdc().address)
            .available(),
        50_000_000
    );
}
