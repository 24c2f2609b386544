//! Importing files Label Studio 1.23.2 itself exported (see `label_studio/PROVENANCE.md`): its
//! Export button's JSON (predictions as ids), its JSON_MIN rows, and its results used as
//! predictions, matched by tag type rather than position, with relations and annotations counted.

use caravan_tasks::import::{AnnotationUse, ImportFormat, import_file};
use caravan_tasks::label_studio::LabelStudioTags;
use caravan_tasks::schema::{Answer, LabelSchema, Span};
use serde_json::{Value, json};

fn export(name: &str) -> String {
    let path = format!("{}/tests/label_studio/{name}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

fn sentiment() -> LabelSchema {
    LabelSchema::SingleChoice {
        options: vec!["Positive".into(), "Negative".into()],
    }
}

fn entities() -> LabelSchema {
    LabelSchema::Spans {
        labels: vec!["PER".into(), "LOC".into()],
        text_field: "text".into(),
    }
}

/// The export with each task's annotations turned into predictions, as a model's pre-labels
/// would come: Label Studio's own result objects, untouched.
fn annotations_as_predictions(text: &str) -> String {
    let mut tasks: Vec<Value> = serde_json::from_str(text).unwrap();
    for task in &mut tasks {
        let predictions: Vec<Value> = task["annotations"]
            .as_array()
            .unwrap()
            .iter()
            .map(|a| json!({ "model_version": "reviewed", "result": a["result"] }))
            .collect();
        task["predictions"] = Value::Array(predictions);
        task["annotations"] = json!([]);
    }
    serde_json::to_string(&tasks).unwrap()
}

#[test]
fn the_export_buttons_json_imports_with_its_prediction_ids_and_annotations_counted() {
    let file = import_file(
        ImportFormat::LabelStudio,
        &export("sentiment.json.export"),
        &sentiment(),
        AnnotationUse::Skip,
    )
    .unwrap();
    assert_eq!(
        file.items.len(),
        2,
        "Label Studio exports only the annotated tasks by default"
    );
    assert_eq!(
        file.items[1].data["text"],
        "Broke after a week — très déçu."
    );
    assert_eq!(
        (file.skipped.prediction_ids, file.skipped.annotations),
        (2, 2)
    );
    let notes = file.skipped.notes().join(" ");
    assert!(
        notes.contains("2 prediction(s) were listed only by id"),
        "{notes}"
    );
    assert!(notes.contains("only_id false"), "{notes}");
}

#[test]
fn json_min_rows_are_refused_with_the_export_to_use_instead() {
    let refused = import_file(
        ImportFormat::LabelStudio,
        &export("sentiment.json-min.export"),
        &sentiment(),
        AnnotationUse::Skip,
    )
    .unwrap_err();
    let first = refused.first();
    assert_eq!(
        (first.unit, first.record, first.field.as_str()),
        ("task", 1, "data")
    );
    assert!(
        first.message.contains("Label Studio's JSON_MIN export"),
        "{refused}"
    );
    assert!(first.message.contains("Export JSON instead"), "{refused}");
}

#[test]
fn results_are_matched_by_tag_type_not_position_and_relations_are_counted() {
    let sentiment_file = import_file(
        ImportFormat::LabelStudio,
        &annotations_as_predictions(&export("sentiment.json.export")),
        &sentiment(),
        AnnotationUse::Skip,
    )
    .unwrap();
    assert_eq!(
        sentiment_file.items[0].predictions[0].answer,
        Answer::Choice("Positive".into()),
        "the TextArea's result comes first in the file"
    );
    assert_eq!(
        sentiment_file.items[1].predictions[0].answer,
        Answer::Choice("Negative".into())
    );

    let entities_file = import_file(
        ImportFormat::LabelStudio,
        &annotations_as_predictions(&export("entities.json.export")),
        &entities(),
        AnnotationUse::Skip,
    )
    .unwrap();
    assert_eq!(entities_file.skipped.relations, 1);
    let item = &entities_file.items[0];
    let Answer::Spans(spans) = &item.predictions[0].answer else {
        panic!("spans expected")
    };
    let text = item.data["text"].as_str().unwrap();
    let words: Vec<String> = spans
        .iter()
        .map(|Span { start, end, .. }| {
            text.chars()
                .skip(*start as usize)
                .take((end - start) as usize)
                .collect()
        })
        .collect();
    assert_eq!(
        words,
        ["Zoë", "Ada", "Zürich"],
        "offsets count characters past the emoji"
    );
}

#[test]
fn an_error_names_label_studios_own_task_id() {
    let people_only = LabelSchema::Spans {
        labels: vec!["PER".into()],
        text_field: "text".into(),
    };
    let text = annotations_as_predictions(&export("entities.json.export"));
    let file_id = serde_json::from_str::<Value>(&text).unwrap()[0]["id"]
        .as_u64()
        .unwrap() as usize;
    let refused = import_file(
        ImportFormat::LabelStudio,
        &text,
        &people_only,
        AnnotationUse::Skip,
    )
    .unwrap_err();
    assert_eq!(refused.first().record, file_id);
    assert!(
        refused.to_string().contains("\"LOC\" is not one of"),
        "{refused}"
    );
}

#[test]
fn annotations_become_gold_answers_or_pre_labels_when_the_requester_says_so() {
    let text = export("sentiment.json.export");
    let as_gold = import_file(
        ImportFormat::LabelStudio,
        &text,
        &sentiment(),
        AnnotationUse::Gold,
    )
    .unwrap();
    let golds: Vec<_> = as_gold.items.iter().map(|item| item.gold.clone()).collect();
    assert_eq!(
        golds,
        [
            Some(Answer::Choice("Positive".into())),
            Some(Answer::Choice("Negative".into()))
        ],
        "the Choices result is found past the TextArea's"
    );
    assert_eq!(
        (
            as_gold.skipped.annotations_as_gold,
            as_gold.skipped.annotations
        ),
        (2, 0)
    );

    let as_pre_labels = import_file(
        ImportFormat::LabelStudio,
        &text,
        &sentiment(),
        AnnotationUse::PreLabels,
    )
    .unwrap();
    let first = &as_pre_labels.items[0].predictions;
    assert_eq!(first.len(), 1, "the prediction listed by id is skipped");
    assert_eq!(first[0].model, "Label Studio annotator 1");
    assert_eq!(first[0].answer, Answer::Choice("Positive".into()));
    assert!(as_pre_labels.items.iter().all(|item| item.gold.is_none()));
    assert_eq!(as_pre_labels.skipped.annotations_as_pre_labels, 2);

    let entities_gold = import_file(
        ImportFormat::LabelStudio,
        &export("entities.json.export"),
        &entities(),
        AnnotationUse::Gold,
    )
    .unwrap();
    let Some(Answer::Spans(spans)) = &entities_gold.items[0].gold else {
        panic!("spans expected")
    };
    assert_eq!(
        spans.iter().map(|s| (s.start, s.end)).collect::<Vec<_>>(),
        [(2, 5), (10, 13), (17, 23)]
    );
    assert_eq!(
        entities_gold.skipped.relations, 1,
        "the annotation's relation is counted"
    );
}

#[test]
fn the_configs_tag_names_are_found_for_the_projects_own_export() {
    let tags = |file: &str, schema: &LabelSchema| {
        import_file(
            ImportFormat::LabelStudio,
            &export(file),
            schema,
            AnnotationUse::Skip,
        )
        .unwrap()
        .label_studio_tags
    };
    // The sentiment config names its text `review` (its data field is `text`), and a TextArea
    // named `note` answers before the Choices named `sentiment`.
    assert_eq!(
        tags("sentiment.json.export", &sentiment()),
        Some(LabelStudioTags {
            from_name: "sentiment".into(),
            to_name: "review".into(),
        })
    );
    assert_eq!(
        tags("entities.json.export", &entities()),
        Some(LabelStudioTags {
            from_name: "label".into(),
            to_name: "text".into(),
        })
    );
    let bare = json!([{ "id": 1, "data": { "text": "no results here" } }]);
    let none = import_file(
        ImportFormat::LabelStudio,
        &bare.to_string(),
        &sentiment(),
        AnnotationUse::Skip,
    )
    .unwrap();
    assert_eq!(none.label_studio_tags, None, "nothing to learn them from");
}

/// Items in a fixed order (Label Studio may list tasks in another), compared whole: data, gold
/// answer and every prediction (model, answer, score).
fn by_id(mut items: Vec<caravan_tasks::item::Item>) -> Vec<caravan_tasks::item::Item> {
    items.sort_by_key(|item| item.id());
    items
}

#[test]
fn a_snapshot_export_imports_its_predictions_in_full() {
    let file = import_file(
        ImportFormat::LabelStudio,
        &export("sentiment.snapshot.export"),
        &sentiment(),
        AnnotationUse::Skip,
    )
    .unwrap();
    assert_eq!(
        file.skipped.prediction_ids, 0,
        "no prediction is only an id"
    );
    let predicted: Vec<(String, Answer, Option<f64>)> = file
        .items
        .iter()
        .flat_map(|item| item.predictions.iter())
        .map(|p| (p.model.clone(), p.answer.clone(), p.score))
        .collect();
    assert_eq!(
        predicted,
        [
            (
                "bert-v2".to_owned(),
                Answer::Choice("Positive".into()),
                Some(0.93)
            ),
            (
                "bert-v2".to_owned(),
                Answer::Choice("Negative".into()),
                Some(0.71)
            ),
        ]
    );
}

/// caravan → Label Studio 1.23.2 → caravan: caravan's own export (kept equal to its exporter's
/// output by a caravan-tasks test), imported into a Label Studio project with the same config and
/// exported again by Label Studio, imports back to the same items: every label (annotations, as
/// gold answers), every suggestion (predictions: model, answer, score), the spans at the same
/// character offsets past emoji and accents, and the config's tag names.
#[test]
fn caravans_export_comes_back_from_label_studio_unchanged() {
    for (name, schema) in [("sentiment", sentiment()), ("entities", entities())] {
        let read = |file: &str| {
            import_file(
                ImportFormat::LabelStudio,
                &export(file),
                &schema,
                AnnotationUse::Gold,
            )
            .unwrap_or_else(|e| panic!("{file}: {e}"))
        };
        let sent = read(&format!("caravan-{name}.label-studio.json"));
        let back = read(&format!("roundtrip-{name}.snapshot.export"));
        assert_eq!(sent.items.len(), 2, "{name}");
        assert!(
            sent.items
                .iter()
                .all(|i| i.gold.is_some() && !i.predictions.is_empty()),
            "{name}: caravan's export has a label and a suggestion per item"
        );
        assert_eq!(by_id(back.items), by_id(sent.items), "{name}");
        assert_eq!(back.skipped.prediction_ids, 0, "{name}");
        assert_eq!(back.label_studio_tags, sent.label_studio_tags, "{name}");
    }
}
