use super::*;
use crate::inference::Method;
use crate::project::{Exam, Overlap, QueueOrder};
use crate::schema::{LabelSchema, Preference};
use caravan_core::Hash32;
use serde_json::json;

const SECOND: u64 = 1000;

fn spec() -> ProjectSpec {
    ProjectSpec {
        title: "Is the review positive?".into(),
        instructions: "Read the review and pick a label.".into(),
        schema: LabelSchema::SingleChoice {
            options: vec!["pos".into(), "neg".into()],
        },
        overlap: Overlap {
            min: 3,
            max: 5,
            confidence: 0.9,
        },
        token: Address::from_label("token"),
        bounty: 10,
        budget: 1_000_000,
        gold_rate: Ppm::ZERO,
        exam: None,
        skill_bar: Ppm::new(600_000).unwrap(),
        gold_grace: 3,
        min_seconds_per_item: 2,
        daily_cap: 1000,
        deadline_ms: 1_000_000 * SECOND,
        lease_seconds: 60,
        order: QueueOrder::ImportOrder,
        method: Method::DawidSkene,
    }
}

fn item(n: u32) -> Item {
    Item {
        data: json!({ "text": format!("review {n}") }),
        gold: None,
        predictions: Vec::new(),
    }
}

fn gold(n: u32, answer: &str) -> Item {
    Item {
        data: json!({ "text": format!("check {n}") }),
        gold: Some(Answer::Choice(answer.into())),
        predictions: Vec::new(),
    }
}

fn board_with(spec: ProjectSpec, items: Vec<Item>) -> (Board, Vec<TaskEvent>) {
    let mut board = Board::new(
        ProjectId(Hash32::ZERO),
        Address::from_label("requester"),
        spec,
    );
    let event = TaskEvent::ItemsAdded {
        items,
        label_studio: None,
    };
    board.apply(&event);
    (board, vec![event])
}

fn person(n: u32) -> Address {
    Address::from_label(&format!("contributor {n}"))
}

/// Takes the next item and answers it `answer` after `think` ms; returns the item and effects.
fn work(
    board: &mut Board,
    log: &mut Vec<TaskEvent>,
    who: Address,
    answer: &str,
    now: &mut u64,
) -> (ItemId, Vec<Effect>) {
    let assignment = board.assign_next_item(who, *now).unwrap();
    *now += 3 * SECOND;
    let (event, effects) = board
        .submit(who, assignment.item, Answer::Choice(answer.into()), *now)
        .unwrap();
    log.push(event);
    (assignment.item, effects)
}

fn paid_total(effects: &[Effect]) -> Amount {
    effects
        .iter()
        .map(|e| match e {
            Effect::Paid { amount, .. } => *amount,
            _ => 0,
        })
        .sum()
}

#[test]
fn an_item_is_never_leased_beyond_its_overlap_nor_twice_to_one_person() {
    let (mut board, _) = board_with(spec(), (0..3).map(item).collect());
    let first = board.items()[0].id;
    let mut handed = Vec::new();
    for n in 0..5 {
        handed.push(board.assign_next_item(person(n), 0).unwrap().item);
    }
    assert_eq!(handed.iter().filter(|i| **i == first).count(), 3);
    assert_eq!(handed[3], board.items()[1].id);
    // Asking again returns the lease already held, not a second item.
    assert_eq!(
        board.assign_next_item(person(4), SECOND).unwrap().item,
        handed[4]
    );
    assert_eq!(board.active_leases(), 5);
}

#[test]
fn leases_expire_and_late_or_hasty_submissions_are_refused() {
    let (mut board, _) = board_with(spec(), vec![item(0)]);
    let who = person(1);
    let a = board.assign_next_item(who, 0).unwrap();
    assert_eq!(a.lease_until_ms, 60 * SECOND);
    let hasty = board.submit(who, a.item, Answer::Choice("pos".into()), SECOND);
    assert!(
        matches!(hasty, Err(SubmitError::TooFast { min_s: 2, .. })),
        "{hasty:?}"
    );
    let late = board.submit(who, a.item, Answer::Choice("pos".into()), 61 * SECOND);
    assert_eq!(late, Err(SubmitError::NoLease(a.item)));
    // The expired lease went back to the pool: three others can still take the item.
    for n in 2..5 {
        assert_eq!(
            board.assign_next_item(person(n), 62 * SECOND).unwrap().item,
            a.item
        );
    }
    let invalid = board.submit(person(2), a.item, Answer::Choice("meh".into()), 70 * SECOND);
    assert!(
        matches!(invalid, Err(SubmitError::Invalid(_))),
        "{invalid:?}"
    );
    assert_eq!(board.judgments().count(), 0);
}

#[test]
fn agreement_resolves_at_minimum_overlap_and_pays_only_the_agreeing() {
    let (mut board, mut log) = board_with(spec(), vec![item(0)]);
    let mut now = 0;
    let mut effects = Vec::new();
    for (n, answer) in ["pos", "pos", "pos"].iter().enumerate() {
        effects.extend(work(&mut board, &mut log, person(n as u32), answer, &mut now).1);
    }
    assert!(
        board.items()[0].resolved,
        "three agreeing 0.8-skill votes reach 0.9"
    );
    assert_eq!(paid_total(&effects), 30);
    assert_eq!(
        board.assign_next_item(person(9), now),
        Err(AssignError::NothingLeft)
    );

    // Disagreement asks for more judgments, one at a time, up to the maximum.
    let (mut board, mut log) = board_with(spec(), vec![item(1)]);
    let mut effects = Vec::new();
    for (n, answer) in ["pos", "neg", "pos", "neg"].iter().enumerate() {
        effects.extend(work(&mut board, &mut log, person(n as u32), answer, &mut now).1);
        assert!(!board.items()[0].resolved);
        assert_eq!(board.items()[0].needed, (n as u32 + 2).clamp(3, 5));
    }
    effects.extend(work(&mut board, &mut log, person(4), "neg", &mut now).1);
    assert!(board.items()[0].resolved, "resolved at the maximum overlap");
    assert_eq!(paid_total(&effects), 30, "the three `neg` answers are paid");
    let rejected = board
        .judgments()
        .filter(|(_, j)| j.status == JudgmentStatus::Rejected)
        .count();
    assert_eq!(rejected, 2);
}

#[test]
fn the_exam_gates_real_work_and_a_failed_exam_pauses_with_the_reason() {
    let mut s = spec();
    s.exam = Some(Exam {
        questions: 2,
        pass_mark: Ppm::new(1_000_000).unwrap(),
    });
    let items = vec![gold(0, "pos"), gold(1, "neg"), item(0)];
    let (mut board, mut log) = board_with(s, items);
    let mut now = 0;
    let real = board.items()[2].id;

    let good = person(1);
    let first = board.assign_next_item(good, now).unwrap();
    assert_ne!(first.item, real, "the exam comes first");
    now += 3 * SECOND;
    let truth = |board: &Board, id: &ItemId| match &board.item(id).unwrap().item.gold {
        Some(Answer::Choice(c)) => c.clone(),
        _ => unreachable!(),
    };
    let answer = truth(&board, &first.item);
    log.push(
        board
            .submit(good, first.item, Answer::Choice(answer), now)
            .unwrap()
            .0,
    );
    let second = board.assign_next_item(good, now).unwrap();
    assert_eq!(
        second.exam_question,
        Some(ExamQuestion { number: 2, of: 2 }),
        "the contributor is told where they are in the exam"
    );
    assert_eq!(
        board.skip(good, second.item, now),
        Err(SkipError::Exam),
        "exam questions are answered, not skipped"
    );
    now += 3 * SECOND;
    let answer = truth(&board, &second.item);
    let (event, effects) = board
        .submit(good, second.item, Answer::Choice(answer), now)
        .unwrap();
    log.push(event);
    assert_eq!(
        effects,
        vec![
            Effect::ExamAnswered {
                contributor: good,
                right: true,
                number: 2,
                of: 2
            },
            Effect::ExamPassed { contributor: good }
        ]
    );
    let real_work = board.assign_next_item(good, now).unwrap();
    assert_eq!(real_work.exam_question, None, "the exam is over");
    assert_eq!(real_work.item, real);
    assert_eq!(board.paid(), 0, "exam answers are not paid");

    let bad = person(2);
    for _ in 0..2 {
        let a = board.assign_next_item(bad, now).unwrap();
        now += 3 * SECOND;
        let wrong = if truth(&board, &a.item) == "pos" {
            "neg"
        } else {
            "pos"
        };
        board
            .submit(bad, a.item, Answer::Choice(wrong.into()), now)
            .unwrap();
    }
    let refused = board.assign_next_item(bad, now).unwrap_err();
    assert_eq!(
        refused.to_string(),
        "you are paused on this project: failed the qualification exam: 0 of 2 right, the pass mark is 100%"
    );
}

#[test]
fn failing_gold_pauses_and_discards_unsettled_work_which_reopens_items() {
    let mut s = spec();
    s.gold_rate = Ppm::new(500_000).unwrap();
    let mut items: Vec<Item> = (0..20).map(|n| gold(n, "pos")).collect();
    items.extend((0..20).map(item));
    let (mut board, mut log) = board_with(s, items);
    let mut now = 0;
    let spammer = person(66);
    let mut paused = None;
    for _ in 0..20 {
        let (_, effects) = work(&mut board, &mut log, spammer, "neg", &mut now);
        if let Some(Effect::Paused { reason, .. }) =
            effects.iter().find(|e| matches!(e, Effect::Paused { .. }))
        {
            paused = Some(reason.clone());
            break;
        }
    }
    let reason = paused.expect("always answering `neg` fails the `pos` gold");
    assert!(
        matches!(
            reason,
            PauseReason::GoldAccuracy {
                correct: 0,
                seen: 3,
                ..
            }
        ),
        "{reason:?}"
    );
    assert!(
        board
            .judgments()
            .filter(|(_, j)| !j.gold)
            .all(|(_, j)| j.status == JudgmentStatus::Discarded)
    );
    assert_eq!(board.paid(), 0);
    assert_eq!(board.committed(), 0, "discarded work is no longer owed");
    // Every real item is open again for others.
    let other = board.assign_next_item(person(1), now).unwrap();
    assert!(board.item(&other.item).is_some());
    assert!(matches!(
        board.assign_next_item(spammer, now),
        Err(AssignError::Paused(_))
    ));
}

#[test]
fn the_budget_is_never_overcommitted() {
    let mut s = spec();
    s.bounty = 10;
    s.budget = 45; // four judgments and a half
    let (mut board, mut log) = board_with(s, (0..5).map(item).collect());
    let mut leased = 0;
    for n in 0..10 {
        match board.assign_next_item(person(n), 0) {
            Ok(_) => leased += 1,
            Err(e) => assert_eq!(e, AssignError::BudgetCommitted),
        }
    }
    assert_eq!(leased, 4);
    let mut now = 0;
    let _ = work(&mut board, &mut log, person(0), "pos", &mut now);
    assert!(board.committed() <= 45);
}

#[test]
fn daily_cap_and_deadline_stop_assignment_with_when_it_resets() {
    let mut s = spec();
    s.daily_cap = 2;
    s.deadline_ms = DAY_MS * 3;
    let (mut board, mut log) = board_with(s, (0..10).map(item).collect());
    let who = person(1);
    let mut now = DAY_MS + 5;
    work(&mut board, &mut log, who, "pos", &mut now);
    work(&mut board, &mut log, who, "pos", &mut now);
    assert_eq!(
        board.assign_next_item(who, now),
        Err(AssignError::DailyCap {
            cap: 2,
            resets_at_ms: 2 * DAY_MS
        })
    );
    assert!(board.assign_next_item(who, 2 * DAY_MS).is_ok());
    assert_eq!(
        board.assign_next_item(person(2), 3 * DAY_MS + 1),
        Err(AssignError::DeadlinePassed)
    );
}

/// A free-text project whose items each want `min` accepted answers out of at most three.
fn reviewed_spec(min: u32) -> ProjectSpec {
    let mut s = spec();
    s.schema = LabelSchema::FreeText {
        min_chars: 5,
        max_chars: 200,
    };
    s.overlap = Overlap {
        min,
        max: 3,
        confidence: 1.0,
    };
    s
}

#[test]
fn reviews_accept_fix_or_reject_and_a_rejected_item_returns_to_the_pool() {
    let (mut board, _) = board_with(reviewed_spec(1), vec![item(0)]);
    let reviewer = person(100);
    board.apply(&TaskEvent::ReviewerAdded { reviewer });
    let writer = person(1);
    let a = board.assign_next_item(writer, 0).unwrap();
    board
        .submit(
            writer,
            a.item,
            Answer::Text("a short summary".into()),
            5 * SECOND,
        )
        .unwrap();
    assert_eq!(
        board.assign_next_item(person(2), 6 * SECOND),
        Err(AssignError::NothingLeft)
    );

    assert_eq!(
        board.next_review(&writer),
        Err(ReviewError::NotReviewer(writer))
    );
    let task = board.next_review(&reviewer).unwrap().unwrap();
    let (_, effects) = board
        .review(reviewer, task.judgment, Verdict::Reject, 7 * SECOND)
        .unwrap();
    assert!(effects.is_empty());
    assert_eq!(
        board.assign_next_item(person(2), 8 * SECOND).unwrap().item,
        a.item
    );
    board
        .submit(
            person(2),
            a.item,
            Answer::Text("a better summary".into()),
            11 * SECOND,
        )
        .unwrap();
    let task = board.next_review(&reviewer).unwrap().unwrap();
    let bad_fix = Verdict::Fix {
        answer: Answer::Text("no".into()),
    };
    assert!(matches!(
        board.review(reviewer, task.judgment, bad_fix, 12 * SECOND),
        Err(ReviewError::InvalidFix(_))
    ));
    let fix = Verdict::Fix {
        answer: Answer::Text("the best summary".into()),
    };
    let (_, effects) = board
        .review(reviewer, task.judgment, fix, 12 * SECOND)
        .unwrap();
    assert_eq!(paid_total(&effects), 10);
    assert!(effects.contains(&Effect::Resolved { item: a.item }));
    assert_eq!(
        board.review(reviewer, task.judgment, Verdict::Accept, 13 * SECOND),
        Err(ReviewError::NotAwaiting(task.judgment))
    );
}

/// A serving node's board forgets reviewed work once its item resolves, yet a contributor is
/// still told how their latest answer settled, and a replay that keeps every judgment (what
/// publishing reads) has the reviewer's fix.
#[test]
fn a_board_keeping_only_open_work_forgets_reviewed_work_once_its_item_resolves() {
    let (full, mut log) = board_with(reviewed_spec(2), vec![item(0), item(1)]);
    let mut board =
        Board::new(full.id, full.requester, full.spec.clone()).with_memory(Memory::OpenWork);
    board.apply(&log[0]);
    let reviewer = person(100);
    let added = TaskEvent::ReviewerAdded { reviewer };
    board.apply(&added);
    log.push(added);
    let mut now = 0;
    for writer in [person(1), person(2)] {
        let handed = board.assign_next_item(writer, now).unwrap();
        assert_eq!(handed.item, item(0).id());
        now += 3 * SECOND;
        let answer = Answer::Text(format!("summary by {writer}"));
        log.push(board.submit(writer, handed.item, answer, now).unwrap().0);
    }
    assert_eq!(board.judgments().count(), 2, "both wait for review");
    let fix = Verdict::Fix {
        answer: Answer::Text("the fixed summary".into()),
    };
    for verdict in [fix, Verdict::Accept] {
        let task = board.next_review(&reviewer).unwrap().unwrap();
        now += SECOND;
        log.push(
            board
                .review(reviewer, task.judgment, verdict, now)
                .unwrap()
                .0,
        );
    }
    assert_eq!(board.status().resolved, 1);
    assert_eq!(
        board.judgments().count(),
        0,
        "settled on a resolved item: forgotten"
    );
    assert!(board.items()[0].judgments.is_empty());
    assert_eq!(board.status().judgments, 2, "still counted");
    assert_eq!(
        board.withdraw_last(person(2), now),
        Err(UndoError::Settled("accepted"))
    );
    // The item is done, so a third writer gets the other one.
    assert_eq!(
        board.assign_next_item(person(3), now).unwrap().item,
        item(1).id()
    );

    let mut replayed = Board::new(full.id, full.requester, full.spec.clone());
    for event in &log {
        replayed.apply(event);
    }
    assert_eq!(replayed.judgments().count(), 2);
    assert_eq!(replayed.status(), board.status());
    let rows = crate::dataset::Dataset::build(&replayed).unwrap().rows;
    let answers: Vec<&Answer> = rows.iter().map(|row| &row.answer).collect();
    assert!(
        answers.contains(&&Answer::Text("the fixed summary".into())),
        "{answers:?}"
    );
}

#[test]
fn model_uncertainty_orders_the_queue_and_agreement_is_reported() {
    let mut s = spec();
    s.order = QueueOrder::ModelUncertainty;
    s.overlap.min = 1;
    s.overlap.confidence = 0.5;
    let predicted = |n: u32, answer: &str, score: f64| Item {
        predictions: vec![crate::item::Prediction {
            model: "bert".into(),
            answer: Answer::Choice(answer.into()),
            score: Some(score),
        }],
        ..item(n)
    };
    let items = vec![
        item(0),
        predicted(1, "pos", 0.99),
        predicted(2, "neg", 0.55),
    ];
    let (mut board, mut log) = board_with(s, items);
    let mut now = 0;
    let order: Vec<ItemId> = (0..3)
        .map(|n| work(&mut board, &mut log, person(n), "pos", &mut now).0)
        .collect();
    let ids: Vec<ItemId> = board.items().iter().map(|i| i.id).collect();
    assert_eq!(
        order,
        vec![ids[2], ids[1], ids[0]],
        "least certain first, unscored last"
    );
    assert_eq!(board.status().model_agreement["bert"], (1, 2));
}

#[test]
fn replaying_the_log_rebuilds_the_board_and_its_effects() {
    let mut s = spec();
    s.gold_rate = Ppm::new(200_000).unwrap();
    s.schema = LabelSchema::Pairwise { allow_tie: true };
    let mut items: Vec<Item> = (0..10)
        .map(|n| Item {
            gold: Some(Answer::Preference(Preference::A)),
            ..gold(n, "x")
        })
        .collect();
    items.extend((0..30).map(item));
    let (mut board, mut log) = board_with(s.clone(), items);
    let mut now = 0;
    let mut live_effects = Vec::new();
    for round in 0..60u32 {
        let who = person(round % 7);
        let Ok(a) = board.assign_next_item(who, now) else {
            continue;
        };
        now += 3 * SECOND;
        let answer = if round % 3 == 0 {
            Preference::B
        } else {
            Preference::A
        };
        let (event, effects) = board
            .submit(who, a.item, Answer::Preference(answer), now)
            .unwrap();
        log.push(event);
        live_effects.extend(effects);
    }
    let mut replayed = Board::new(board.id, board.requester, s);
    let replay_effects: Vec<Effect> = log.iter().flat_map(|e| replayed.apply(e)).collect();
    assert_eq!(replay_effects, live_effects);
    assert!(replayed.judgments().eq(board.judgments()));
    assert_eq!(replayed.items(), board.items());
    assert_eq!(replayed.paid(), board.paid());
    assert_eq!(replayed.status(), board.status());
    let resolved = board
        .items()
        .iter()
        .filter(|i| !i.is_gold() && i.resolved)
        .count() as u64;
    assert_eq!(board.status().resolved, resolved, "the counter is the walk");
    assert_eq!(
        board.status().items,
        board.items().iter().filter(|i| !i.is_gold()).count() as u64
    );
}

#[test]
fn project_agreement_is_reported_for_categorical_work() {
    let (mut board, mut log) = board_with(spec(), vec![item(0), item(1)]);
    assert_eq!(board.status().fleiss_kappa, None, "nothing judged yet");
    let mut now = 0;
    for n in 0..3 {
        // Everyone agrees: "pos" on the first item, "neg" on the second.
        for answer in ["pos", "neg"] {
            work(&mut board, &mut log, person(n), answer, &mut now);
        }
    }
    let status = board.status();
    assert!((status.fleiss_kappa.unwrap() - 1.0).abs() < 1e-12);
    assert!((status.krippendorff_alpha.unwrap() - 1.0).abs() < 1e-12);
}

#[test]
fn closing_releases_what_no_pending_work_can_claim_and_stops_assignment() {
    let (mut board, mut log) = board_with(spec(), (0..3).map(item).collect());
    let mut now = 0;
    work(&mut board, &mut log, person(1), "pos", &mut now);
    let held = board.assign_next_item(person(2), now).unwrap();
    // One pending judgment and one lease stay covered; the rest of the budget is free.
    assert_eq!(board.releasable(), 1_000_000 - 2 * 10);
    board.apply(&TaskEvent::Closed {
        released: board.releasable(),
    });
    assert_eq!(
        board.assign_next_item(person(3), now),
        Err(AssignError::Closed)
    );
    // Work already handed out may still be finished and paid.
    now += 3 * SECOND;
    board
        .submit(person(2), held.item, Answer::Choice("pos".into()), now)
        .unwrap();
    assert_eq!(board.committed(), board.spec.budget);
    assert_eq!(board.releasable(), 0);
}

#[test]
fn a_skipped_item_goes_to_others_and_comes_back_only_when_nothing_else_is_left() {
    let (mut board, _) = board_with(spec(), (0..2).map(item).collect());
    let me = person(1);
    let first = board.assign_next_item(me, 0).unwrap();
    assert_eq!(
        board.skip(me, board.items()[1].id, 0),
        Err(SkipError::NoLease(board.items()[1].id)),
        "only the item one holds can be skipped"
    );
    board.skip(me, first.item, 0).unwrap();
    assert_eq!(board.active_leases(), 0, "the lease is given back");
    let other = board.assign_next_item(person(2), 0).unwrap();
    assert_eq!(
        other.item, first.item,
        "someone else may take a skipped item"
    );
    let second = board.assign_next_item(me, 0).unwrap();
    assert_ne!(second.item, first.item, "the skipper gets another one");
    board.skip(me, second.item, 0).unwrap();
    let again = board.assign_next_item(me, 0).unwrap();
    assert!(
        [first.item, second.item].contains(&again.item),
        "with only skipped items left, they come back"
    );
}

#[test]
fn the_listing_counts_what_is_left_the_pace_and_the_contributors_day() {
    let mut s = spec();
    s.daily_cap = 5;
    s.overlap = Overlap {
        min: 1,
        max: 1,
        confidence: 0.5,
    };
    let (mut board, mut log) = board_with(s, (0..4).map(item).collect());
    let me = person(1);
    let listing = board.listing(&me, 0);
    assert_eq!(listing.items_left, 4);
    assert_eq!(listing.availability, Availability::Open);
    assert_eq!(listing.mine, None, "nothing done here yet");
    assert_eq!(listing.median_seconds, None);
    let mut now = 0;
    for _ in 0..3 {
        now += 7 * SECOND;
        work(&mut board, &mut log, me, "pos", &mut now);
    }
    let listing = board.listing(&me, now);
    assert_eq!(listing.items_left, 1, "one judgment resolves an item here");
    let mine = listing.mine.expect("they worked here");
    assert_eq!((mine.submitted, mine.daily_cap_left), (3, 2));
    assert!(
        listing
            .median_seconds
            .is_some_and(|s| (7..=12).contains(&s)),
        "{:?}",
        listing.median_seconds
    );
    let tomorrow = board.listing(&me, now + DAY_MS);
    assert_eq!(tomorrow.mine.unwrap().daily_cap_left, 5, "the cap resets");
    now += 7 * SECOND;
    work(&mut board, &mut log, me, "pos", &mut now);
    assert_eq!(board.listing(&me, now).availability, Availability::Finished);
    let mut replayed = Board::new(board.id, board.requester, board.spec.clone());
    for event in &log {
        replayed.apply(event);
    }
    assert_eq!(
        replayed.listing(&me, now),
        board.listing(&me, now),
        "a replay lists the same"
    );
}

#[test]
fn the_latest_unsettled_submission_is_taken_back_and_its_item_handed_back_under_its_lease() {
    let (mut board, mut log) = board_with(spec(), (0..3).map(item).collect());
    let (ada, bob) = (person(1), person(2));
    let mut now = 0;
    let handed = board.assign_next_item(ada, now).unwrap();
    let (first, _) = {
        now += 3 * SECOND;
        let (event, effects) = board
            .submit(ada, handed.item, Answer::Choice("neg".into()), now)
            .unwrap();
        log.push(event);
        (handed.item, effects)
    };
    // The screen asks for the next item at once; taking back releases it.
    let meanwhile = board.assign_next_item(ada, now).unwrap();
    assert_ne!(meanwhile.item, first);
    now += SECOND;
    let (event, withdrawn) = board.withdraw_last(ada, now).unwrap();
    log.push(event);
    assert_eq!(withdrawn.answer, Answer::Choice("neg".into()));
    assert_eq!(withdrawn.assignment.item, first);
    assert_eq!(
        (
            withdrawn.assignment.handed_out_ms,
            withdrawn.assignment.lease_until_ms
        ),
        (handed.handed_out_ms, handed.lease_until_ms),
        "the item comes back under the lease it was answered under"
    );
    assert_eq!(board.contributor(&ada).unwrap().submitted, 0);
    assert!(
        board.contributor(&ada).unwrap().answer_times.is_empty(),
        "the time of the answer taken back goes with it"
    );
    assert!(board.judgment(0).unwrap().status == JudgmentStatus::Withdrawn);
    assert!(board.items()[0].judgments.is_empty(), "it no longer counts");
    assert_eq!(
        board.withdraw_last(ada, now),
        Err(UndoError::Nothing),
        "only once"
    );
    // Answered again, it counts once; what the others answer settles it and pays once.
    now += 3 * SECOND;
    let (event, _) = board
        .submit(ada, first, Answer::Choice("pos".into()), now)
        .unwrap();
    log.push(event);
    let mut paid = 0;
    for who in [bob, person(3)] {
        let assignment = board.assign_next_item(who, now).unwrap();
        assert_eq!(assignment.item, first);
        now += 3 * SECOND;
        let (event, effects) = board
            .submit(who, first, Answer::Choice("pos".into()), now)
            .unwrap();
        log.push(event);
        paid += paid_total(&effects);
    }
    assert_eq!(
        paid, 30,
        "three agreeing judgments, the withdrawn one not among them"
    );
    assert_eq!(
        board.contributor(&ada).unwrap().median_spent_ms(),
        Some(7 * SECOND as u32),
        "answered again 7 s after the first hand-out, under the same lease"
    );
    assert_eq!(
        replayed_contributor_times(&log, &board, ada),
        board.contributor(&ada).unwrap().answer_times,
        "a replay counts the same times"
    );
    assert_eq!(
        board.withdraw_last(ada, now),
        Err(UndoError::Settled("accepted"))
    );

    let mut replayed = Board::new(board.id, board.requester, spec());
    for event in &log {
        replayed.apply(event);
    }
    assert!(replayed.judgments().eq(board.judgments()));
    assert_eq!(replayed.items(), board.items());
    assert_eq!(replayed.status(), board.status());
    assert_eq!(replayed.paid(), board.paid());
}

#[test]
fn a_submission_is_not_taken_back_once_its_lease_would_have_ended_or_once_graded() {
    let (mut board, _) = board_with(spec(), vec![item(0), item(1)]);
    let ada = person(1);
    let handed = board.assign_next_item(ada, 0).unwrap();
    board
        .submit(ada, handed.item, Answer::Choice("pos".into()), 3 * SECOND)
        .unwrap();
    assert_eq!(
        board.withdraw_last(ada, handed.lease_until_ms),
        Err(UndoError::Expired)
    );
    assert_eq!(board.contributor(&ada).unwrap().submitted, 1);

    let mut checked = spec();
    checked.gold_rate = Ppm::ONE;
    let (mut board, _) = board_with(checked, vec![gold(0, "pos"), item(1)]);
    let handed = board.assign_next_item(ada, 0).unwrap();
    board
        .submit(ada, handed.item, Answer::Choice("pos".into()), 3 * SECOND)
        .unwrap();
    assert_eq!(
        board.withdraw_last(ada, 4 * SECOND),
        Err(UndoError::Nothing),
        "a check answer is graded at once"
    );
}

/// The answer times a replay of `log` gives `account`.
fn replayed_contributor_times(log: &[TaskEvent], board: &Board, account: Address) -> AnswerTimes {
    let mut replayed = Board::new(board.id, board.requester, spec());
    for event in log {
        replayed.apply(event);
    }
    replayed.contributor(&account).unwrap().answer_times.clone()
}
