//! The requester's view of a project: counts and agreement exact on every view, contributors
//! paged in order.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use caravan_core::{Address, Event, Genesis, Ppm, Token};
use caravan_node::desk::Desk;
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
fn every_view_is_exact_and_a_rejected_answer_still_disagrees() {
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
    assert_eq!(first.status.resolved, 2);
    assert_eq!(
        first.status.fleiss_kappa, None,
        "everyone said pos: there is no disagreement for chance to explain"
    );
    assert_eq!(first.contributor_count, 2);

    // The third item: worker 2 says neg, worker 0 says pos. The tie resolves it, and one of
    // the two answers is rejected; it still counts as the disagreement it was.
    answer(workers[2], "neg");
    now.fetch_add(1_000, Ordering::SeqCst);
    let soon = desk.request_view(&project, requester, 0, 2).unwrap();
    assert_eq!(soon.status.judgments, 5, "counts are exact on every view");
    assert_eq!(soon.contributor_count, 3);
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

    answer(workers[0], "pos");
    let split = desk.request_view(&project, requester, 0, 2).unwrap();
    assert_eq!(split.status.resolved, 3);
    assert_eq!(
        split.contributors.iter().map(|c| c.rejected).sum::<u32>(),
        1,
        "the tie rejected one answer"
    );
    // Items {pos, pos}, {pos, pos}, {pos, neg}: observed agreement 2/3 against 26/36 by
    // chance gives κ = −0.2; the coincidences give α = 0.
    let kappa = split
        .status
        .fleiss_kappa
        .expect("defined once two labels were used");
    let alpha = split.status.krippendorff_alpha.expect("defined too");
    assert!((kappa + 0.2).abs() < 1e-12, "kappa {kappa}");
    assert!(alpha.abs() < 1e-12, "alpha {alpha}");
    // Two items resolved near-certain (two votes of skill 0.8: 94%), the tie at 50%.
    let mut bins = vec![0; 10];
    bins[9] = 2;
    bins[5] = 1;
    assert_eq!(split.status.confidence_at_resolution, bins);

    assert!(
        desk.request_view(&project, workers[0], 0, 2).is_err(),
        "only the requester watches it"
    );
}
