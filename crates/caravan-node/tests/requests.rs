//! The requester's view of a project: counts exact on every view, agreement measured again only
//! when the board changed and the last measure has aged, contributors paged in order.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use caravan_core::{Address, Event, Genesis, Ppm, Token};
use caravan_node::desk::{AGREEMENT_FRESH_MS, Desk};
use caravan_node::meter::Meter;
use caravan_store::{Journal, Location, SharedJournal};
use caravan_tasks::item::Item;
use caravan_tasks::project::ProjectSpec;
use caravan_tasks::schema::Answer;
use serde_json::json;

fn usdc() -> Token {
    Token {
        address: Address::from_label("usdc"),
        symbol: "USDC".into(),
        decimals: 6,
    }
}

fn spec() -> ProjectSpec {
    serde_json::from_value(json!({
        "title": "Sentiment",
        "instructions": "Pick one.",
        "schema": { "type": "single_choice", "options": ["pos", "neg"] },
        "overlap": { "min": 2, "max": 2, "confidence": 0.5 },
        "token": usdc().address,
        "bounty": "10",
        "budget": "1000000",
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
fn agreement_is_measured_again_only_once_the_board_changed_and_the_measure_aged() {
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
            Event::Deposited {
                payer: requester,
                token: usdc().address,
                amount: 1_000_000,
            },
        ])
        .unwrap();
    let now = Arc::new(AtomicU64::new(1_000_000));
    let clock = Arc::clone(&now);
    let desk = Desk::over(
        Arc::new(SharedJournal::new(journal)),
        Arc::new(Meter::default()),
        Arc::new(move || clock.load(Ordering::SeqCst)),
    )
    .unwrap();
    let project = desk.create_project(requester, spec()).unwrap();
    let items: Vec<Item> = (0..6)
        .map(|n| {
            serde_json::from_value(json!({ "data": { "text": format!("review {n}") } })).unwrap()
        })
        .collect();
    desk.add_items(&project, requester, items).unwrap();
    let workers: Vec<Address> = (0..3)
        .map(|n| Address::from_label(&format!("worker {n}")))
        .collect();
    let answer = |worker: Address, choice: &str| {
        let assignment = desk.next_item(&project, worker).unwrap();
        desk.submit(
            &project,
            worker,
            assignment.item,
            Answer::Choice(choice.into()),
        )
        .unwrap();
    };
    for _ in 0..2 {
        answer(workers[0], "pos");
        answer(workers[1], "pos");
    }

    let first = desk.request_view(&project, requester, 0, 2).unwrap();
    assert_eq!(first.status.judgments, 4);
    assert!(first.agreement_exact);
    assert_eq!(first.contributor_count, 2);
    let measured = first.agreement_measured_ms;

    answer(workers[2], "neg");
    now.fetch_add(1_000, Ordering::SeqCst);
    let soon = desk.request_view(&project, requester, 0, 2).unwrap();
    assert_eq!(soon.status.judgments, 5, "counts are exact on every view");
    assert_eq!(soon.contributor_count, 3);
    assert_eq!(
        soon.agreement_measured_ms, measured,
        "agreement kept while fresh"
    );
    assert!(!soon.agreement_exact, "and said to predate the last answer");
    assert_eq!(
        soon.contributors
            .iter()
            .map(|c| c.submitted)
            .collect::<Vec<_>>(),
        [2, 2],
        "the first page holds those with the most submissions"
    );
    let second_page = desk.request_view(&project, requester, 2, 2).unwrap();
    assert_eq!(second_page.contributors.len(), 1);
    assert_eq!(second_page.contributors[0].account, workers[2]);

    now.fetch_add(AGREEMENT_FRESH_MS, Ordering::SeqCst);
    let later = desk.request_view(&project, requester, 0, 2).unwrap();
    assert!(
        later.agreement_measured_ms > measured,
        "measured again once aged"
    );
    assert!(later.agreement_exact);
    let idle = desk.request_view(&project, requester, 0, 2).unwrap();
    assert_eq!(idle.agreement_measured_ms, later.agreement_measured_ms);

    assert!(
        desk.request_view(&project, workers[0], 0, 2).is_err(),
        "only the requester watches it"
    );
}
