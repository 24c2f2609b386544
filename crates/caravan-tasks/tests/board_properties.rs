//! Invariants of the work board under random crowds, with fixed seeds so a failure replays:
//! the budget is never overcommitted and every payment is one accepted judgment; nobody judges
//! an item twice; no item collects more judgments than its maximum overlap; replaying the
//! stored events reproduces the board and its effects exactly; a board that forgets settled
//! work (as a serving node's does) holds only open work and produces what a board keeping
//! every judgment does.

use caravan_core::{Address, Amount, Hash32, Ppm};
use caravan_tasks::agreement::{fleiss_kappa, krippendorff_alpha};
use caravan_tasks::answers::Answers;
use caravan_tasks::board::{Board, Effect, JudgmentStatus, Memory, TaskEvent};
use caravan_tasks::inference::Method;
use caravan_tasks::item::Item;
use caravan_tasks::project::{Exam, Overlap, ProjectId, ProjectSpec, QueueOrder};
use caravan_tasks::schema::{Answer, LabelSchema};
use proptest::prelude::*;
use proptest::test_runner::{Config, RngSeed, TestRunner};
use rustc_hash::FxHashSet;
use serde_json::json;

#[derive(Clone, Debug)]
struct Crowd {
    min: u32,
    extra: u32,
    gold_rate: u32,
    exam: bool,
    bounty: u64,
    budget_judgments: u64,
    items: u32,
    /// Per contributor: the chance in percent of answering right.
    accuracy: Vec<u8>,
    /// Per step: who acts, the random draw for their answer, and how long they take (seconds).
    steps: Vec<(usize, u8, u16)>,
}

fn crowd() -> impl Strategy<Value = Crowd> {
    (
        1u32..4,
        0u32..3,
        0u32..400_000,
        any::<bool>(),
        1u64..1000,
        5u64..200,
        5u32..40,
        proptest::collection::vec(0u8..=100, 2..12),
        proptest::collection::vec((0usize..12, any::<u8>(), 0u16..200), 20..300),
    )
        .prop_map(
            |(min, extra, gold_rate, exam, bounty, budget_judgments, items, accuracy, steps)| {
                Crowd {
                    min,
                    extra,
                    gold_rate,
                    exam,
                    bounty,
                    budget_judgments,
                    items,
                    accuracy,
                    steps,
                }
            },
        )
}

const OPTIONS: [&str; 3] = ["cat", "dog", "bird"];

/// What the random crowds did in total, so the test can show it exercised payments and pauses.
#[derive(Default)]
struct Seen {
    payments: usize,
    pauses: usize,
    resolved: u64,
    /// Answers the agreement measures counted, and measures that were defined.
    evidence: usize,
    measured: usize,
}

fn run(crowd: &Crowd, seen: &mut Seen) -> Result<(), TestCaseError> {
    let spec = ProjectSpec {
        title: "animals".into(),
        instructions: String::new(),
        schema: LabelSchema::SingleChoice {
            options: OPTIONS.iter().map(|s| s.to_string()).collect(),
        },
        overlap: Overlap {
            min: crowd.min,
            max: crowd.min + crowd.extra,
            confidence: 0.95,
        },
        token: Address::from_label("token"),
        bounty: Amount::from(crowd.bounty),
        budget: Amount::from(crowd.bounty * crowd.budget_judgments),
        gold_rate: Ppm::new(crowd.gold_rate).unwrap(),
        exam: crowd.exam.then(|| Exam {
            questions: 2,
            pass_mark: Ppm::new(500_000).unwrap(),
        }),
        skill_bar: Ppm::new(500_000).unwrap(),
        gold_grace: 2,
        min_seconds_per_item: 1,
        daily_cap: 50,
        deadline_ms: u64::MAX,
        lease_seconds: 120,
        order: QueueOrder::ImportOrder,
        method: Method::DawidSkene,
    };
    let truth = |n: u32| OPTIONS[(n % 3) as usize];
    let mut items: Vec<Item> = (0..6)
        .map(|n| Item {
            data: json!({ "gold": n }),
            gold: Some(Answer::Choice(truth(n).into())),
            predictions: Vec::new(),
        })
        .collect();
    items.extend((0..crowd.items).map(|n| Item {
        data: json!({ "n": n, "truth": truth(n) }),
        gold: None,
        predictions: Vec::new(),
    }));
    let added = TaskEvent::ItemsAdded {
        items,
        label_studio: None,
    };
    // The board works as a serving node's does, forgetting settled work.
    let mut board = Board::new(ProjectId(Hash32::ZERO), Address::ZERO, spec.clone())
        .with_memory(Memory::OpenWork);
    board.apply(&added);
    // Read now, the ranking is kept in step with every change below; the replayed board's is
    // built when first read, at the end.
    prop_assert_eq!(board.ranked_count(), 0);
    prop_assert_eq!(board.agreement(), (None, None));
    let mut log = vec![added];
    let mut effects = Vec::new();
    let mut now = 0u64;
    let mut judged = FxHashSet::default();
    for &(who, draw, seconds) in &crowd.steps {
        let who = who % crowd.accuracy.len();
        let account = Address::from_label(&format!("worker {who}"));
        now += 500;
        let Ok(assignment) = board.assign_next_item(account, now) else {
            continue;
        };
        prop_assert!(board.committed() <= spec.budget, "overcommitted");
        now += u64::from(seconds) * 1000;
        let data = &assignment.data;
        let right = data
            .get("truth")
            .and_then(|t| t.as_str())
            .map(str::to_owned)
            .unwrap_or_else(|| truth(data["gold"].as_u64().unwrap() as u32).to_owned());
        let answer = if u32::from(draw) * 100 < u32::from(crowd.accuracy[who]) * 255 {
            right
        } else {
            OPTIONS[usize::from(draw) % 3].to_owned()
        };
        let Ok((event, new_effects)) =
            board.submit(account, assignment.item, Answer::Choice(answer), now)
        else {
            continue;
        };
        log.push(event);
        effects.extend(new_effects);
        prop_assert!(board.committed() <= spec.budget, "overcommitted");
        // Now and then the contributor takes the answer back at once (U on the page).
        if draw % 13 == 0
            && let Ok((withdrawn, _)) = board.withdraw_last(account, now)
        {
            log.push(withdrawn);
            continue;
        }
        prop_assert!(judged.insert((account, assignment.item)), "judged twice");
    }

    let payments: Vec<u32> = effects
        .iter()
        .filter_map(|e| match e {
            Effect::Paid { judgment, .. } => Some(*judgment),
            _ => None,
        })
        .collect();
    seen.payments += payments.len();
    seen.pauses += effects
        .iter()
        .filter(|e| matches!(e, Effect::Paused { .. }))
        .count();
    seen.resolved += board.status().resolved;
    let distinct: FxHashSet<u32> = payments.iter().copied().collect();
    prop_assert_eq!(distinct.len(), payments.len(), "a judgment paid twice");
    prop_assert_eq!(board.paid(), spec.bounty * payments.len() as u128);
    prop_assert!(board.paid() <= spec.budget);

    let mut replayed = Board::new(board.id, board.requester, spec.clone());
    let mut forgetful =
        Board::new(board.id, board.requester, spec.clone()).with_memory(Memory::OpenWork);
    for forgets in [&mut replayed, &mut forgetful] {
        let replay_effects: Vec<Effect> = log.iter().flat_map(|e| forgets.apply(e)).collect();
        prop_assert_eq!(&replay_effects, &effects);
        prop_assert_eq!(forgets.status(), board.status());
    }
    for item in replayed.items().iter().filter(|i| !i.is_gold()) {
        prop_assert!(item.judgments.len() as u32 <= spec.overlap.max);
    }
    let held: Vec<_> = board.judgments().collect();
    prop_assert_eq!(&forgetful.judgments().collect::<Vec<_>>(), &held);
    // The forgetting board holds exactly the judgments that can still change or still bear on
    // their item: pending ones, and settled ones on items still collecting answers.
    for (number, judgment) in replayed.judgments() {
        let item = &replayed.items()[judgment.item as usize];
        let open = judgment.status == JudgmentStatus::Pending
            || (!item.resolved && !item.is_gold() && judgment.status != JudgmentStatus::Withdrawn);
        prop_assert_eq!(
            board.judgment(number),
            open.then_some(judgment),
            "judgment {} ({:?}) on an item resolved {}",
            number,
            &judgment.status,
            item.resolved
        );
    }
    prop_assert_eq!(
        board.judgment_count() as usize,
        replayed.judgments().count()
    );
    // The requester's table, read from the ranking the board keeps (or builds), lists exactly
    // who a scan would: everyone who submitted or was paused, most submissions first, then by
    // address.
    for board in [&board, &replayed] {
        let mut scanned: Vec<(u32, Address)> = board
            .contributors()
            .filter(|(_, c)| c.submitted > 0 || c.paused.is_some())
            .map(|(account, c)| (c.submitted, *account))
            .collect();
        scanned.sort_by_key(|&(submitted, account)| (std::cmp::Reverse(submitted), account));
        let ranked: Vec<(u32, Address)> = board
            .ranked_contributors(0)
            .map(|(account, c)| (c.submitted, *account))
            .collect();
        prop_assert_eq!(board.ranked_count(), scanned.len());
        prop_assert_eq!(ranked, scanned);
    }
    // Agreement kept in step by each board, forgetting or not, equals the measures computed
    // afresh from every answer on a real item that was neither taken back nor discarded with
    // a paused contributor, rejected ones included.
    let mut scanned = Answers::new(OPTIONS.iter().map(|s| s.to_string()).collect()).unwrap();
    let mut evidence = 0;
    for (_, judgment) in replayed.judgments() {
        if judgment.gold
            || matches!(
                judgment.status,
                JudgmentStatus::Discarded | JudgmentStatus::Withdrawn
            )
        {
            continue;
        }
        evidence += 1;
        let Answer::Choice(label) = &judgment.answer else {
            unreachable!("a single-choice project")
        };
        scanned
            .push(
                &judgment.item.to_string(),
                &judgment.contributor.to_string(),
                label,
            )
            .unwrap();
    }
    seen.evidence += evidence;
    let (fresh_kappa, fresh_alpha) = (fleiss_kappa(&scanned), krippendorff_alpha(&scanned));
    for measured in [&board, &replayed, &forgetful] {
        let (kappa, alpha) = measured.agreement();
        for (kept, fresh) in [(kappa, fresh_kappa), (alpha, fresh_alpha)] {
            prop_assert_eq!(kept.is_some(), fresh.is_some());
            if let (Some(kept), Some(fresh)) = (kept, fresh) {
                prop_assert!((kept - fresh).abs() < 1e-9, "kept {} fresh {}", kept, fresh);
                seen.measured += 1;
            }
        }
    }
    Ok(())
}

#[test]
fn random_crowds_keep_every_board_invariant() {
    let config = Config {
        cases: 200,
        rng_seed: RngSeed::Fixed(0x7a5c_0003),
        failure_persistence: None,
        ..Config::default()
    };
    let seen = std::cell::RefCell::new(Seen::default());
    TestRunner::new(config)
        .run(&crowd(), |c| run(&c, &mut seen.borrow_mut()))
        .unwrap();
    let seen = seen.into_inner();
    assert!(
        seen.payments > 1000 && seen.pauses > 20 && seen.resolved > 500,
        "the crowds hardly worked: {} payments, {} pauses, {} items resolved",
        seen.payments,
        seen.pauses,
        seen.resolved
    );
    assert!(
        seen.evidence > 1000 && seen.measured > 100,
        "agreement was hardly measured: {} answers, {} defined measures",
        seen.evidence,
        seen.measured
    );
}
