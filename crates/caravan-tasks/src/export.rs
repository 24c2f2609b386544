//! Dataset export as JSONL, CSV and Label Studio JSON, one chunk of text per row, so the shell
//! streams any size of dataset without building it in memory.

use serde_json::{Value, json};

use crate::board::Board;
use crate::dataset::{Dataset, DatasetRow};
use crate::label_studio::LabelStudioTags;
use crate::schema::{Answer, LabelSchema, Preference};

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ExportFormat {
    Jsonl,
    Csv,
    /// Label Studio's JSON, its results named `from_name` and `to_name` where given, else as
    /// the project's Label Studio import found them ([`Board::label_studio_tags`]).
    LabelStudio {
        from_name: Option<String>,
        to_name: Option<String>,
    },
}

/// The export as chunks of text; concatenated, they are the whole file.
pub fn export_chunks<'a>(
    dataset: &'a Dataset,
    board: &'a Board,
    format: &'a ExportFormat,
) -> impl Iterator<Item = String> + 'a {
    (0..).map_while(move |n| export_chunk(dataset, board, format, n))
}

/// The `n`-th chunk of the export (a header, one row, or a closing bracket), or `None` past the
/// end; lets a server stream from owned data without holding an iterator across awaits.
pub fn export_chunk(
    dataset: &Dataset,
    board: &Board,
    format: &ExportFormat,
    n: usize,
) -> Option<String> {
    let data = |row: &DatasetRow| {
        board
            .item(&row.item)
            .map_or(Value::Null, |state| state.item.data.clone())
    };
    let rows = &dataset.rows;
    match format {
        ExportFormat::Jsonl => rows.get(n).map(|row| {
            let line = json!({
                "item": row.item,
                "data": data(row),
                "answer": row.answer,
                "confidence": row.confidence,
                "contributors": row.contributors,
            });
            format!("{line}\n")
        }),
        ExportFormat::Csv => match n {
            0 => Some("item,label,confidence,contributors,data\n".to_owned()),
            _ => rows.get(n - 1).map(|row| {
                let contributors: Vec<String> =
                    row.contributors.iter().map(|a| a.to_string()).collect();
                format!(
                    "{},{},{:.6},{},{}\n",
                    row.item,
                    csv_field(&answer_text(&row.answer)),
                    row.confidence,
                    contributors.join(" "),
                    csv_field(&data(row).to_string())
                )
            }),
        },
        ExportFormat::LabelStudio { from_name, to_name } => match n {
            0 => Some("[\n".to_owned()),
            n if n <= rows.len() => {
                let row = &rows[n - 1];
                let kept = board.label_studio_tags();
                let tags = &LabelStudioTags {
                    from_name: from_name.clone().unwrap_or_else(|| kept.from_name.clone()),
                    to_name: to_name.clone().unwrap_or_else(|| kept.to_name.clone()),
                };
                let data = data(row);
                let predictions: Vec<Value> = board
                    .item(&row.item)
                    .map(|state| state.item.predictions.as_slice())
                    .unwrap_or_default()
                    .iter()
                    .map(|prediction| {
                        json!({
                            "model_version": prediction.model,
                            "score": prediction.score,
                            "result": label_studio_result(&dataset.schema, tags, &prediction.answer, &data),
                        })
                    })
                    .collect();
                let task = json!({
                    "data": data,
                    "meta": { "caravan_item": row.item, "confidence": row.confidence },
                    "annotations": [{ "result": label_studio_result(&dataset.schema, tags, &row.answer, &data) }],
                    "predictions": predictions,
                });
                let separator = if n < rows.len() { ",\n" } else { "\n" };
                Some(format!("{task}{separator}"))
            }
            n if n == rows.len() + 1 => Some("]\n".to_owned()),
            _ => None,
        },
    }
}

/// An answer as plain text, the inverse of [`crate::import::parse_answer_text`].
pub fn answer_text(answer: &Answer) -> String {
    match answer {
        Answer::Choice(c) => c.clone(),
        Answer::Choices(c) => c.join("|"),
        Answer::Text(t) => t.clone(),
        Answer::Rating(r) => r.to_string(),
        Answer::Preference(p) => match p {
            Preference::A => "a",
            Preference::B => "b",
            Preference::Tie => "tie",
        }
        .to_owned(),
        Answer::Spans(spans) => serde_json::to_string(spans).expect("spans serialise"),
    }
}

fn csv_field(text: &str) -> String {
    if text.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", text.replace('"', "\"\""))
    } else {
        text.to_owned()
    }
}

/// An answer as Label Studio annotation results (the shapes the importer reads), named by
/// `tags`. Spans carry `value.text`, the words they cover in the item's `data`, as Label Studio
/// writes them.
fn label_studio_result(
    schema: &LabelSchema,
    tags: &LabelStudioTags,
    answer: &Answer,
    data: &Value,
) -> Value {
    let (from_name, to_name) = (&tags.from_name, &tags.to_name);
    let one = |kind: &str, value: Value| json!([{ "from_name": from_name, "to_name": to_name, "type": kind, "value": value }]);
    match answer {
        Answer::Choice(c) => one("choices", json!({ "choices": [c] })),
        Answer::Choices(c) => one("choices", json!({ "choices": c })),
        Answer::Text(t) => one("textarea", json!({ "text": [t] })),
        Answer::Rating(r) => one("rating", json!({ "rating": r })),
        Answer::Preference(p) => one(
            "pairwise",
            json!({ "selected": match p {
                Preference::A => "left",
                Preference::B => "right",
                Preference::Tie => "tie",
            } }),
        ),
        Answer::Spans(spans) => {
            let text_field = match schema {
                LabelSchema::Spans { text_field, .. } => text_field.as_str(),
                _ => "text",
            };
            let text = data
                .get(text_field)
                .and_then(Value::as_str)
                .unwrap_or_default();
            Value::Array(
                spans
                    .iter()
                    .map(|s| {
                        let covered: String = text
                            .chars()
                            .skip(s.start as usize)
                            .take(s.end.saturating_sub(s.start) as usize)
                            .collect();
                        json!({ "from_name": from_name, "to_name": to_name, "type": "labels",
                                "value": { "start": s.start, "end": s.end, "text": covered, "labels": [s.label] } })
                    })
                    .collect(),
            )
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::import::{AnnotationUse, ImportFormat, import_file};
    use crate::schema::Span;

    #[test]
    fn spans_carry_the_words_they_cover_and_come_back_through_an_import_unchanged() {
        let schema = LabelSchema::Spans {
            labels: vec!["PER".into(), "LOC".into()],
            text_field: "text".into(),
        };
        let data = json!({ "text": "🎉 Zoë met Ada in Zürich." });
        let spans = vec![
            Span {
                start: 2,
                end: 5,
                label: "PER".into(),
            },
            Span {
                start: 17,
                end: 23,
                label: "LOC".into(),
            },
        ];
        let tags = LabelStudioTags::default_for(&schema);
        let result = label_studio_result(&schema, &tags, &Answer::Spans(spans.clone()), &data);
        let covered: Vec<&str> = result
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r["value"]["text"].as_str().unwrap())
            .collect();
        assert_eq!(
            covered,
            ["Zoë", "Zürich"],
            "offsets count characters, past the emoji"
        );

        let file = json!([{ "id": 7, "data": data, "annotations": [{ "result": result }] }]);
        let imported = import_file(
            ImportFormat::LabelStudio,
            &file.to_string(),
            &schema,
            AnnotationUse::Gold,
        )
        .unwrap();
        assert_eq!(imported.items[0].gold, Some(Answer::Spans(spans)));
    }
}
