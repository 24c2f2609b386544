use super::*;
use serde_json::json;

fn sentiment() -> LabelSchema {
    LabelSchema::SingleChoice {
        options: vec!["Positive".into(), "Negative".into()],
    }
}

#[test]
fn jsonl_takes_plain_objects_or_items_with_gold_and_predictions() {
    let text = concat!(
        "{\"text\": \"great phone\"}\n",
        "\n",
        "{\"data\": {\"text\": \"broke in a day\"}, \"gold\": {\"choice\": \"Negative\"},",
        " \"predictions\": [{\"model\": \"m1\", \"answer\": {\"choice\": \"Negative\"}, \"score\": 0.8}]}\n",
    );
    let items = import_items(ImportFormat::Jsonl, text, &sentiment()).unwrap();
    assert_eq!(items.len(), 2);
    assert_eq!(items[0].data, json!({"text": "great phone"}));
    assert_eq!(items[1].gold, Some(Answer::Choice("Negative".into())));
    assert!((items[1].model_uncertainty().unwrap() - 0.2).abs() < 1e-12);

    let bad =
        "{\"text\": \"ok\"}\n{\"data\": {\"text\": \"x\"}, \"gold\": {\"choice\": \"Neutral\"}}\n";
    let err = import_items(ImportFormat::Jsonl, bad, &sentiment()).unwrap_err();
    assert_eq!(
        (err.first().record, err.first().field.as_str()),
        (2, "gold")
    );
    assert!(
        err.to_string().contains("\"Neutral\" is not an option"),
        "{err}"
    );

    let err = import_items(ImportFormat::Jsonl, "{\"text\": \n", &sentiment()).unwrap_err();
    assert_eq!(
        (err.first().record, err.first().field.as_str()),
        (1, "json")
    );
}

#[test]
fn csv_rows_become_data_and_the_gold_column_is_parsed_for_the_schema() {
    let text = "text,source,gold\n\"great, really\",web,Positive\nmeh,app,\n";
    let items = import_items(ImportFormat::Csv, text, &sentiment()).unwrap();
    assert_eq!(
        items[0].data,
        json!({"text": "great, really", "source": "web"})
    );
    assert_eq!(items[0].gold, Some(Answer::Choice("Positive".into())));
    assert_eq!(items[1].gold, None);

    let rating = LabelSchema::Rating { min: 1, max: 5 };
    let err = import_items(ImportFormat::Csv, "text,gold\nfine,7\n", &rating).unwrap_err();
    assert_eq!(
        (err.first().record, err.first().field.as_str()),
        (2, "gold")
    );
    assert!(err.to_string().contains("from 1 to 5, got 7"), "{err}");
    let err = import_items(ImportFormat::Csv, "text,gold\nfine,seven\n", &rating).unwrap_err();
    assert!(err.to_string().contains("not a whole number"), "{err}");
    let err = import_items(ImportFormat::Csv, "text,gold\nfine,3,extra\n", &rating).unwrap_err();
    assert_eq!(err.first().field, "row");
}

#[test]
fn label_studio_predictions_are_converted_and_a_mismatch_names_the_field() {
    let tasks = json!([
        {"id": 1, "data": {"text": "love it"},
         "predictions": [{"model_version": "bert-v2", "score": 0.93,
            "result": [{"from_name": "sentiment", "to_name": "text", "type": "choices",
                        "value": {"choices": ["Positive"]}}]}]},
        {"id": 2, "data": {"text": "no predictions here"}}
    ]);
    let items = import_items(ImportFormat::LabelStudio, &tasks.to_string(), &sentiment()).unwrap();
    assert_eq!(items[0].predictions[0].model, "bert-v2");
    assert_eq!(
        items[0].predictions[0].answer,
        Answer::Choice("Positive".into())
    );
    assert_eq!(items[0].predictions[0].score, Some(0.93));
    assert!(items[1].predictions.is_empty());

    // A pre-label whose option is spelled differently from the schema would silently not show
    // in other tools; here it stops the import and says where.
    let misspelt = json!([{"data": {"text": "x"}, "predictions": [{"result": [
        {"type": "choices", "value": {"choices": ["positive"]}}]}]}]);
    let err = import_items(
        ImportFormat::LabelStudio,
        &misspelt.to_string(),
        &sentiment(),
    )
    .unwrap_err();
    assert_eq!(
        (
            err.first().unit,
            err.first().record,
            err.first().field.as_str()
        ),
        ("task", 1, "predictions[0]")
    );
    assert!(
        err.to_string().contains("\"positive\" is not an option"),
        "{err}"
    );

    let wrong_type = json!([{"data": {"text": "x"}, "predictions": [{"result": [
        {"type": "rating", "value": {"rating": 4}}]}]}]);
    let err = import_items(
        ImportFormat::LabelStudio,
        &wrong_type.to_string(),
        &sentiment(),
    )
    .unwrap_err();
    assert_eq!(err.first().field, "predictions[0].result");
    assert!(err.to_string().contains("no `choices` result"), "{err}");
}

#[test]
fn label_studio_named_entities_become_sorted_spans_checked_against_the_text() {
    let schema = LabelSchema::Spans {
        labels: vec!["PER".into(), "LOC".into()],
        text_field: "text".into(),
    };
    let tasks = json!([{"data": {"text": "Ada met Alan in Bletchley"}, "predictions": [{"result": [
        {"type": "labels", "value": {"start": 16, "end": 25, "labels": ["LOC"]}},
        {"type": "labels", "value": {"start": 0, "end": 3, "labels": ["PER"]}}
    ]}]}]);
    let items = import_items(ImportFormat::LabelStudio, &tasks.to_string(), &schema).unwrap();
    let Answer::Spans(spans) = &items[0].predictions[0].answer else {
        panic!("spans expected")
    };
    assert_eq!((spans[0].label.as_str(), spans[1].start), ("PER", 16));

    let beyond = json!([{"data": {"text": "Ada"}, "predictions": [{"result": [
        {"type": "labels", "value": {"start": 0, "end": 9, "labels": ["PER"]}}]}]}]);
    let err = import_items(ImportFormat::LabelStudio, &beyond.to_string(), &schema).unwrap_err();
    assert!(err.to_string().contains("start < end <= 3"), "{err}");
}

#[test]
fn the_same_content_is_the_same_item_whatever_the_key_order() {
    let a = import_items(ImportFormat::Jsonl, "{\"a\": 1, \"b\": 2}\n", &sentiment()).unwrap();
    let b = import_items(ImportFormat::Jsonl, "{\"b\": 2, \"a\": 1}\n", &sentiment()).unwrap();
    assert_eq!(a[0].id(), b[0].id());
    assert_eq!(
        ImportFormat::from_file_name("tasks.JSON"),
        Some(ImportFormat::LabelStudio)
    );
    assert_eq!(ImportFormat::from_file_name("items.txt"), None);
}

#[test]
fn every_bad_record_is_reported_with_its_place_and_none_is_imported() {
    let text = concat!(
        "{\"data\": {\"text\": \"a\"}, \"gold\": {\"choice\": \"Neutral\"}}\n",
        "{\"text\": \"fine\"}\n",
        "{\"text\": \n",
        "{\"data\": {\"text\": \"b\"}, \"gold\": {\"rating\": 3}}\n",
    );
    let err = import_items(ImportFormat::Jsonl, text, &sentiment()).unwrap_err();
    let places: Vec<(usize, &str)> = err
        .errors
        .iter()
        .map(|e| (e.record, e.field.as_str()))
        .collect();
    assert_eq!(places, [(1, "gold"), (3, "json"), (4, "gold")]);
    assert_eq!(err.bad_records, 3);
    assert!(
        err.to_string().ends_with("(and 2 more bad records)"),
        "{err}"
    );

    let many = format!(
        "text,gold\n{}",
        "x,Neutral\n".repeat(MAX_REPORTED_ERRORS + 20)
    );
    let err = import_items(ImportFormat::Csv, &many, &sentiment()).unwrap_err();
    assert_eq!(err.errors.len(), MAX_REPORTED_ERRORS);
    assert_eq!(err.bad_records, MAX_REPORTED_ERRORS + 20);
    assert_eq!(err.errors[1].record, 3, "lines count the header");
}
