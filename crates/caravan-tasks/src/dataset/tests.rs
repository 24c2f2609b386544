use super::*;
use crate::board::TaskEvent;
use crate::export::{ExportFormat, export_chunks};
use crate::import::{ImportFormat, import_items};
use crate::inference::Method;
use crate::item::Item;
use crate::label_studio::LabelStudioTags;
use crate::project::{Overlap, ProjectId, ProjectSpec, QueueOrder};
use serde_json::json;

fn spec(schema: LabelSchema, min: u32) -> ProjectSpec {
    ProjectSpec {
        title: "t".into(),
        instructions: String::new(),
        schema,
        overlap: Overlap {
            min,
            max: min,
            confidence: 0.99,
        },
        token: Address::from_label("token"),
        bounty: 5,
        budget: 1_000_000,
        gold_rate: Ppm::ZERO,
        exam: None,
        skill_bar: Ppm::ZERO,
        gold_grace: 1,
        min_seconds_per_item: 0,
        daily_cap: 1000,
        deadline_ms: u64::MAX,
        lease_seconds: 60,
        order: QueueOrder::ImportOrder,
        method: Method::DawidSkene,
    }
}

fn person(name: &str) -> Address {
    Address::from_label(name)
}

/// Twenty sentiment items judged by a careful, a sloppy and an average contributor.
fn judged_board() -> Board {
    let schema = LabelSchema::SingleChoice {
        options: vec!["pos".into(), "neg".into()],
    };
    let mut board = Board::new(
        ProjectId(Hash32::ZERO),
        person("requester"),
        spec(schema, 3),
    );
    let items = (0..20)
        .map(|n| Item {
            data: json!({ "text": format!("review {n}"), "truth": if n % 2 == 0 { "pos" } else { "neg" } }),
            gold: None,
            predictions: Vec::new(),
        })
        .collect();
    board.apply(&TaskEvent::ItemsAdded {
        items,
        label_studio: None,
    });
    let mut now = 0;
    for round in 0..20 {
        // The sloppy contributor errs on every third item, the average one on two others.
        for (who, wrong_rounds) in [
            ("careful", &[][..]),
            ("sloppy", &[0, 3, 6, 9, 12, 15, 18][..]),
            ("average", &[1, 8][..]),
        ] {
            let account = person(who);
            let Ok(a) = board.assign_next_item(account, now) else {
                continue;
            };
            now += 1000;
            let truth = a.data["truth"].as_str().unwrap();
            let flip = wrong_rounds.contains(&round);
            let answer = match (truth, flip) {
                ("pos", false) | ("neg", true) => "pos",
                _ => "neg",
            };
            board
                .submit(account, a.item, Answer::Choice(answer.into()), now)
                .unwrap();
        }
    }
    board
}

#[test]
fn a_published_dataset_labels_items_and_weighs_contributors_by_skill() {
    let board = judged_board();
    let dataset = Dataset::build(&board).unwrap();
    assert_eq!(dataset.rows.len(), 20);
    for row in &dataset.rows {
        let data = &board.item(&row.item).unwrap().item.data;
        assert_eq!(
            row.answer,
            Answer::Choice(data["truth"].as_str().unwrap().into())
        );
    }
    let weight = |who| {
        dataset
            .contributors
            .iter()
            .find(|m| m.account == person(who))
            .map_or(0, |m| m.weight)
    };
    assert!(weight("careful") > weight("average"));
    assert!(weight("average") > weight("sloppy"));
    assert!(
        dataset
            .contributors
            .windows(2)
            .all(|w| w[0].account < w[1].account)
    );

    let manifest = dataset
        .manifest(
            "reviews".into(),
            person("requester"),
            Licence::OpenUse,
            Ppm::new(100_000).unwrap(),
        )
        .unwrap();
    manifest.validate().unwrap();
    assert_eq!(manifest.content, dataset.content_hash());
    assert_eq!(
        Dataset::build(&board).unwrap().item_root,
        dataset.item_root,
        "deterministic"
    );
}

#[test]
fn the_item_root_commits_to_every_label() {
    let dataset = Dataset::build(&judged_board()).unwrap();
    let mut changed = dataset.clone();
    changed.rows[3].answer = Answer::Choice("pos".into());
    changed.rows[3].confidence = 0.5;
    let root =
        MerkleTree::from_leaf_hashes(changed.rows.iter().map(DatasetRow::leaf_hash).collect())
            .root();
    assert_ne!(root, dataset.item_root);
}

#[test]
fn nothing_resolved_is_nothing_to_publish() {
    let schema = LabelSchema::Rating { min: 1, max: 5 };
    let board = Board::new(ProjectId(Hash32::ZERO), person("r"), spec(schema, 1));
    assert_eq!(Dataset::build(&board), Err(DatasetError::Empty));
}

/// A Label Studio export with each task's annotations made its predictions, as a model's
/// pre-labels would come.
fn annotations_as_predictions(studio: &str) -> String {
    let mut tasks: Vec<serde_json::Value> = serde_json::from_str(studio).unwrap();
    for task in &mut tasks {
        task["predictions"] = task["annotations"].take();
    }
    serde_json::to_string(&tasks).unwrap()
}

#[test]
fn exports_stream_every_row_and_label_studio_output_reimports() {
    let board = judged_board();
    let dataset = Dataset::build(&board).unwrap();
    let jsonl: String = export_chunks(&dataset, &board, &ExportFormat::Jsonl).collect();
    assert_eq!(jsonl.lines().count(), 20);
    let first: serde_json::Value = serde_json::from_str(jsonl.lines().next().unwrap()).unwrap();
    assert!(first["data"]["text"].is_string() && first["answer"]["choice"].is_string());

    let csv: String = export_chunks(&dataset, &board, &ExportFormat::Csv).collect();
    let mut reader = csv::Reader::from_reader(csv.as_bytes());
    assert_eq!(
        reader.records().count(),
        20,
        "quoted JSON data stays one field"
    );

    let studio: String = export_chunks(
        &dataset,
        &board,
        &ExportFormat::LabelStudio {
            from_name: None,
            to_name: None,
        },
    )
    .collect();
    let as_predictions = annotations_as_predictions(&studio);
    let items = import_items(ImportFormat::LabelStudio, &as_predictions, &dataset.schema).unwrap();
    assert_eq!(items.len(), 20);
    for (item, row) in items.iter().zip(&dataset.rows) {
        assert_eq!(item.id(), row.item);
        assert_eq!(item.predictions[0].answer, row.answer);
    }
    let names = |studio: &str| -> (String, String) {
        let tasks: serde_json::Value = serde_json::from_str(studio).unwrap();
        let result = &tasks[0]["annotations"][0]["result"][0];
        (
            result["from_name"].as_str().unwrap().to_owned(),
            result["to_name"].as_str().unwrap().to_owned(),
        )
    };
    assert_eq!(names(&studio), ("label".to_owned(), "text".to_owned()));

    // Once a Label Studio import found its config's names, the export uses them; names the
    // requester gives win.
    let mut board = board;
    board.apply(&TaskEvent::ItemsAdded {
        items: Vec::new(),
        label_studio: Some(LabelStudioTags {
            from_name: "sentiment".into(),
            to_name: "review".into(),
        }),
    });
    let export = |from_name: Option<&str>| -> String {
        export_chunks(
            &dataset,
            &board,
            &ExportFormat::LabelStudio {
                from_name: from_name.map(str::to_owned),
                to_name: None,
            },
        )
        .collect()
    };
    assert_eq!(
        names(&export(None)),
        ("sentiment".to_owned(), "review".to_owned())
    );
    assert_eq!(
        names(&export(Some("mood"))),
        ("mood".to_owned(), "review".to_owned())
    );
    let items = import_items(
        ImportFormat::LabelStudio,
        &annotations_as_predictions(&export(None)),
        &dataset.schema,
    )
    .unwrap();
    assert_eq!(items.len(), 20, "the names do not change what imports");
}

#[test]
fn reviewed_work_publishes_accepted_and_fixed_answers_only() {
    let schema = LabelSchema::FreeText {
        min_chars: 1,
        max_chars: 100,
    };
    let mut board = Board::new(ProjectId(Hash32::ZERO), person("r"), spec(schema, 1));
    let items = (0..3)
        .map(|n| Item {
            data: json!({ "prompt": n }),
            gold: None,
            predictions: Vec::new(),
        })
        .collect();
    board.apply(&TaskEvent::ItemsAdded {
        items,
        label_studio: None,
    });
    let reviewer = person("reviewer");
    board.apply(&TaskEvent::ReviewerAdded { reviewer });
    let verdicts = [
        crate::board::Verdict::Accept,
        crate::board::Verdict::Fix {
            answer: Answer::Text("fixed".into()),
        },
        crate::board::Verdict::Reject,
    ];
    for (n, verdict) in verdicts.into_iter().enumerate() {
        let writer = person(&format!("writer {n}"));
        let a = board.assign_next_item(writer, 0).unwrap();
        board
            .submit(writer, a.item, Answer::Text(format!("text {n}")), 1)
            .unwrap();
        let task = board.next_review(&reviewer).unwrap().unwrap();
        board.review(reviewer, task.judgment, verdict, 2).unwrap();
    }
    let dataset = Dataset::build(&board).unwrap();
    let mut answers: Vec<&Answer> = dataset.rows.iter().map(|r| &r.answer).collect();
    answers.sort_by_key(|a| format!("{a:?}"));
    assert_eq!(
        answers,
        vec![
            &Answer::Text("fixed".into()),
            &Answer::Text("text 0".into())
        ]
    );
    assert_eq!(
        dataset.contributors.len(),
        2,
        "the rejected writer has no weight"
    );
}

/// `schema`'s items (each with a model's pre-label) answered by one contributor each and
/// accepted by a reviewer when the type is reviewed, with the Label Studio tag names of
/// `tags`: a board whose export is exactly determined.
fn answered_board(
    schema: LabelSchema,
    tags: LabelStudioTags,
    items: Vec<(serde_json::Value, Answer, Answer)>,
) -> Board {
    let mut board = Board::new(ProjectId(Hash32::ZERO), person("r"), spec(schema, 1));
    let answers: Vec<Answer> = items.iter().map(|(_, _, answer)| answer.clone()).collect();
    let items = items
        .into_iter()
        .map(|(data, predicted, _)| Item {
            data,
            gold: None,
            predictions: vec![crate::item::Prediction {
                model: "bert-v2".into(),
                answer: predicted,
                score: Some(0.875),
            }],
        })
        .collect();
    board.apply(&TaskEvent::ItemsAdded {
        items,
        label_studio: Some(tags),
    });
    let reviewer = person("reviewer");
    board.apply(&TaskEvent::ReviewerAdded { reviewer });
    for (n, answer) in answers.into_iter().enumerate() {
        let writer = person(&format!("labeller {n}"));
        let a = board.assign_next_item(writer, 0).unwrap();
        board.submit(writer, a.item, answer, 1).unwrap();
        if let Ok(Some(task)) = board.next_review(&reviewer) {
            board
                .review(reviewer, task.judgment, crate::board::Verdict::Accept, 2)
                .unwrap();
        }
    }
    board
}

/// caravan's Label Studio exports that `scripts/label-studio/make-exports.sh` loads into Label
/// Studio itself for the round trip: the committed files are what caravan exports today (set
/// `CARAVAN_WRITE_FIXTURES=1` to write them after changing the export on purpose).
#[test]
fn the_files_sent_through_label_studio_are_what_caravan_exports() {
    let choice = |c: &str| Answer::Choice(c.into());
    let sentiment = answered_board(
        LabelSchema::SingleChoice {
            options: vec!["Positive".into(), "Negative".into()],
        },
        LabelStudioTags {
            from_name: "sentiment".into(),
            to_name: "review".into(),
        },
        vec![
            (
                json!({ "text": "Battery lasts two days, love it." }),
                choice("Positive"),
                choice("Positive"),
            ),
            (
                json!({ "text": "Broke after a week — très déçu." }),
                choice("Positive"),
                choice("Negative"),
            ),
        ],
    );
    let span = |start, end, label: &str| crate::schema::Span {
        start,
        end,
        label: label.into(),
    };
    let entities = answered_board(
        LabelSchema::Spans {
            labels: vec!["PER".into(), "LOC".into()],
            text_field: "text".into(),
        },
        LabelStudioTags {
            from_name: "label".into(),
            to_name: "text".into(),
        },
        vec![
            (
                json!({ "text": "🎉 Zoë met Ada in Zürich." }),
                Answer::Spans(vec![span(2, 5, "PER")]),
                Answer::Spans(vec![
                    span(2, 5, "PER"),
                    span(10, 13, "PER"),
                    span(17, 23, "LOC"),
                ]),
            ),
            (
                json!({ "text": "Ünal flew 🛫 from Köln." }),
                Answer::Spans(vec![]),
                Answer::Spans(vec![span(0, 4, "PER"), span(17, 21, "LOC")]),
            ),
        ],
    );
    for (name, board) in [("sentiment", &sentiment), ("entities", &entities)] {
        let dataset = Dataset::build(board).unwrap();
        assert_eq!(dataset.rows.len(), 2, "{name}: every item resolved");
        let format = ExportFormat::LabelStudio {
            from_name: None,
            to_name: None,
        };
        let exported: String = export_chunks(&dataset, board, &format).collect();
        let path = format!(
            "{}/tests/label_studio/caravan-{name}.label-studio.json",
            env!("CARGO_MANIFEST_DIR")
        );
        if std::env::var_os("CARAVAN_WRITE_FIXTURES").is_some() {
            std::fs::write(&path, &exported).unwrap();
        }
        let committed = std::fs::read_to_string(&path).unwrap_or_default();
        assert_eq!(
            committed, exported,
            "{path} is not what caravan exports: regenerate it with CARAVAN_WRITE_FIXTURES=1 and the Label Studio round trip with scripts/label-studio/make-exports.sh"
        );
    }
}
