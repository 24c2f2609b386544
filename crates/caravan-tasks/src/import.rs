//! Item import from JSONL, CSV and Label Studio task JSON. Every record is validated against the
//! project's schema (gold answers and model predictions included). A bad record stops the import,
//! so nothing is half-imported, but the parser carries on to the end of the file and reports
//! every bad record (the first [`MAX_REPORTED_ERRORS`], and how many in all) with its position
//! and field, so a requester fixes a file in one pass rather than one error per try.
//!
//! - JSONL: one object per line, either `{"data": {...}, "gold": ANSWER, "predictions": [...]}`
//!   or a plain object that is the item's data.
//! - CSV: a header line of field names; each row's fields become the item's data. A `gold` column
//!   holds the known answer written as text (see [`parse_answer_text`]) and is not part of the data.
//! - Label Studio: a JSON array of tasks `{"id", "data": {...}, "predictions": [{"model_version",
//!   "score", "result": [...]}]}`. Of each prediction's results, those of the tag type the schema
//!   answers with (`choices`, `labels`, `rating`, `textarea` or `pairwise`) become the answer,
//!   whatever their position; results of other tags are left out. Errors name Label Studio's own
//!   task id. What is not imported is counted in [`Skipped`]: predictions listed only by id (as
//!   the Export button writes them), relations, and annotations. A file of flat rows (the
//!   JSON_MIN export) is refused with which export to use instead.

use serde_json::Value;

use crate::item::{Item, ItemError, Prediction};
use crate::label_studio::{LabelStudioTags, check_tag_name};
use crate::schema::{Answer, LabelSchema, Preference, Span};

/// The most items one import may carry; split bigger files.
pub const MAX_IMPORT_ITEMS: usize = 1_000_000;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ImportFormat {
    Jsonl,
    Csv,
    LabelStudio,
}

impl ImportFormat {
    /// Guesses the format from a file name's extension: `.jsonl`, `.csv` or `.json` (Label Studio).
    pub fn from_file_name(name: &str) -> Option<ImportFormat> {
        let lower = name.to_ascii_lowercase();
        if lower.ends_with(".jsonl") || lower.ends_with(".ndjson") {
            Some(ImportFormat::Jsonl)
        } else if lower.ends_with(".csv") {
            Some(ImportFormat::Csv)
        } else if lower.ends_with(".json") {
            Some(ImportFormat::LabelStudio)
        } else {
            None
        }
    }
}

/// What is wrong with an import, and where: `record` is the line (JSONL, CSV, counting the
/// header) or the task's position in the array (Label Studio, from 1).
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{unit} {record}: {field}: {message}")]
pub struct ImportError {
    pub unit: &'static str,
    pub record: usize,
    pub field: String,
    pub message: String,
}

/// The most bad records one refused import lists; the rest are only counted.
pub const MAX_REPORTED_ERRORS: usize = 100;

/// Why an import was refused: its bad records in file order (at most [`MAX_REPORTED_ERRORS`])
/// and how many there were in all. A fault of the whole file (not JSON, no header) is one error.
#[derive(Debug, Clone, PartialEq)]
pub struct ImportErrors {
    pub errors: Vec<ImportError>,
    pub bad_records: usize,
}

impl ImportErrors {
    fn one(error: ImportError) -> ImportErrors {
        ImportErrors {
            errors: vec![error],
            bad_records: 1,
        }
    }

    /// The first bad record, which every refused import has.
    pub fn first(&self) -> &ImportError {
        &self.errors[0]
    }
}

impl std::fmt::Display for ImportErrors {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.first())?;
        match self.bad_records {
            1 => Ok(()),
            2 => write!(f, " (and 1 more bad record)"),
            n => write!(f, " (and {} more bad records)", n - 1),
        }
    }
}

impl std::error::Error for ImportErrors {}

impl From<ImportError> for ImportErrors {
    fn from(error: ImportError) -> ImportErrors {
        ImportErrors::one(error)
    }
}

/// The records of a file as they are parsed: good ones kept, bad ones listed.
#[derive(Default)]
struct Records {
    items: Vec<Item>,
    errors: Vec<ImportError>,
    bad_records: usize,
}

impl Records {
    fn push(&mut self, record: Result<Item, ImportError>) {
        match record {
            Ok(item) => self.items.push(item),
            Err(error) => {
                self.bad_records += 1;
                if self.errors.len() < MAX_REPORTED_ERRORS {
                    self.errors.push(error);
                }
            }
        }
    }

    fn finish(self) -> Result<Vec<Item>, ImportErrors> {
        if self.bad_records > 0 {
            return Err(ImportErrors {
                errors: self.errors,
                bad_records: self.bad_records,
            });
        }
        Ok(self.items)
    }
}

/// What a file held besides its items, so nothing is dropped without a word: what was left out,
/// and what its Label Studio annotations became.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct Skipped {
    /// Label Studio predictions listed only by their id, with no result to import.
    pub prediction_ids: usize,
    /// Label Studio relations between spans, which no caravan answer holds.
    pub relations: usize,
    /// Label Studio annotations (people's answers) not taken: all of them when the requester
    /// chose not to import them, and those after a task's first when it is taken as gold.
    pub annotations: usize,
    /// Annotations taken as gold answers (a task's first).
    pub annotations_as_gold: usize,
    /// Annotations taken as pre-labels, shown to contributors as suggestions.
    pub annotations_as_pre_labels: usize,
}

/// What an import does with the people's answers a Label Studio file holds.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum AnnotationUse {
    /// Leave them out (counted): the items are to be answered afresh.
    #[default]
    Skip,
    /// Take each task's first annotation as its known answer, making it a check question.
    Gold,
    /// Show each annotation to contributors as a suggestion, like a model's pre-label.
    PreLabels,
}

impl AnnotationUse {
    /// `skip`, `gold` or `pre_labels`, as the API and the forms name them.
    pub fn from_code(code: &str) -> Option<AnnotationUse> {
        match code {
            "skip" => Some(AnnotationUse::Skip),
            "gold" => Some(AnnotationUse::Gold),
            "pre_labels" => Some(AnnotationUse::PreLabels),
            _ => None,
        }
    }
}

impl Skipped {
    /// Each count that is not zero, in words, with what to do about it.
    pub fn notes(&self) -> Vec<String> {
        [
            (
                self.prediction_ids,
                "prediction(s) were listed only by id and were skipped: Label Studio's Export button writes predictions as ids. To import them, export a snapshot with predictions in full (Label Studio's API: POST /api/projects/{id}/exports with serialization_options.predictions.only_id false).",
            ),
            (
                self.relations,
                "relation(s) between spans were skipped: caravan's span answers hold the spans, not relations.",
            ),
            (
                self.annotations_as_gold,
                "annotation(s) became gold answers: those items are check questions.",
            ),
            (
                self.annotations_as_pre_labels,
                "annotation(s) became pre-labels, shown to contributors as suggestions.",
            ),
            (
                self.annotations,
                "annotation(s) were not imported: import them as gold answers or as pre-labels if they should count.",
            ),
        ]
        .into_iter()
        .filter(|(count, _)| *count > 0)
        .map(|(count, said)| format!("{count} {said}"))
        .collect()
    }
}

/// A parsed, valid file: its items and what it held that was not imported.
#[derive(Clone, Debug, PartialEq)]
pub struct ImportedFile {
    pub items: Vec<Item>,
    pub skipped: Skipped,
    /// The tag names of the Label Studio config the file was exported from, as its results
    /// use them, so caravan's own Label Studio export can use them too.
    pub label_studio_tags: Option<LabelStudioTags>,
}

/// Parses and validates every record of `text`, keeping only the items (annotations skipped).
pub fn import_items(
    format: ImportFormat,
    text: &str,
    schema: &LabelSchema,
) -> Result<Vec<Item>, ImportErrors> {
    import_file(format, text, schema, AnnotationUse::Skip).map(|file| file.items)
}

/// Parses and validates every record of `text`, using Label Studio annotations as `annotations`
/// says, and counts what it held that was not imported.
pub fn import_file(
    format: ImportFormat,
    text: &str,
    schema: &LabelSchema,
    annotations: AnnotationUse,
) -> Result<ImportedFile, ImportErrors> {
    let mut skipped = Skipped::default();
    let mut label_studio_tags = None;
    let items = match format {
        ImportFormat::Jsonl => parse_jsonl(text, schema)?,
        ImportFormat::Csv => parse_csv(text, schema)?,
        ImportFormat::LabelStudio => {
            let tasks = label_studio_tasks(text)?;
            label_studio_tags = tags_used(&tasks, schema);
            parse_label_studio(&tasks, schema, annotations, &mut skipped)?
        }
    };
    if items.len() > MAX_IMPORT_ITEMS {
        return Err(ImportErrors::one(ImportError {
            unit: "import",
            record: items.len(),
            field: "items".into(),
            message: format!("more than {MAX_IMPORT_ITEMS} items; split the file"),
        }));
    }
    Ok(ImportedFile {
        items,
        skipped,
        label_studio_tags,
    })
}

fn error(unit: &'static str, record: usize, field: &str, message: impl ToString) -> ImportError {
    ImportError {
        unit,
        record,
        field: field.to_owned(),
        message: message.to_string(),
    }
}

/// Validates an item, turning its error into one that names the record and field.
fn checked(
    item: Item,
    schema: &LabelSchema,
    unit: &'static str,
    record: usize,
) -> Result<Item, ImportError> {
    item.validate(schema).map_err(|e| {
        let field = match &e {
            ItemError::NotAnObject | ItemError::TooLarge(_) => "data".to_owned(),
            ItemError::Gold(_) => "gold".to_owned(),
            ItemError::Prediction { index, .. } | ItemError::PredictionScore { index, .. } => {
                format!("predictions[{index}]")
            }
        };
        // The error's own text may start with the field it names; say the field once.
        let message = e.to_string();
        let message = message
            .strip_prefix(&format!("{field}: "))
            .map_or(message.clone(), str::to_owned);
        error(unit, record, &field, message)
    })?;
    Ok(item)
}

fn parse_jsonl(text: &str, schema: &LabelSchema) -> Result<Vec<Item>, ImportErrors> {
    let mut records = Records::default();
    for (i, line) in text.lines().enumerate() {
        if !line.trim().is_empty() {
            records.push(jsonl_record(line, i + 1, schema));
        }
    }
    records.finish()
}

fn jsonl_record(line: &str, line_no: usize, schema: &LabelSchema) -> Result<Item, ImportError> {
    let value: Value = serde_json::from_str(line)
        .map_err(|e| error("line", line_no, "json", format!("not valid JSON: {e}")))?;
    let item = match value.get("data") {
        Some(data) if data.is_object() => serde_json::from_value::<Item>(value.clone())
            .map_err(|e| error("line", line_no, "item", e))?,
        _ => Item {
            data: value,
            gold: None,
            predictions: Vec::new(),
        },
    };
    checked(item, schema, "line", line_no)
}

fn parse_csv(text: &str, schema: &LabelSchema) -> Result<Vec<Item>, ImportErrors> {
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(true)
        .from_reader(text.as_bytes());
    let headers = reader
        .headers()
        .map_err(|e| error("line", 1, "header", e))?
        .clone();
    if headers.is_empty() || headers.iter().any(str::is_empty) {
        return Err(error("line", 1, "header", "every column needs a name").into());
    }
    let mut records = Records::default();
    for record in reader.records() {
        records.push(
            record
                .map_err(|e| {
                    let line = e.position().map_or(0, |p| p.line() as usize);
                    error("line", line, "row", e)
                })
                .and_then(|record| csv_record(&headers, &record, schema)),
        );
    }
    records.finish()
}

fn csv_record(
    headers: &csv::StringRecord,
    record: &csv::StringRecord,
    schema: &LabelSchema,
) -> Result<Item, ImportError> {
    let line = record.position().map_or(0, |p| p.line() as usize);
    let mut data = serde_json::Map::new();
    let mut gold = None;
    for (name, value) in headers.iter().zip(record.iter()) {
        if name == "gold" {
            if !value.is_empty() {
                gold = Some(
                    parse_answer_text(schema, value)
                        .map_err(|message| error("line", line, "gold", message))?,
                );
            }
        } else {
            data.insert(name.to_owned(), Value::String(value.to_owned()));
        }
    }
    let item = Item {
        data: Value::Object(data),
        gold,
        predictions: Vec::new(),
    };
    checked(item, schema, "line", line)
}

/// Reads an answer written as plain text, as a CSV cell or a command-line argument holds it:
/// the option for single choice, options joined by `|` for multiple choice, the number for a
/// rating, `a`/`b`/`tie` for pairwise, the text itself for free text, and a JSON array of
/// `{"start","end","label"}` for spans.
pub fn parse_answer_text(schema: &LabelSchema, text: &str) -> Result<Answer, String> {
    Ok(match schema {
        LabelSchema::SingleChoice { .. } => Answer::Choice(text.to_owned()),
        LabelSchema::MultipleChoice { .. } => {
            Answer::Choices(text.split('|').map(str::to_owned).collect())
        }
        LabelSchema::FreeText { .. } => Answer::Text(text.to_owned()),
        LabelSchema::Rating { .. } => Answer::Rating(
            text.trim()
                .parse()
                .map_err(|_| format!("{text:?} is not a whole number"))?,
        ),
        LabelSchema::Pairwise { .. } => Answer::Preference(match text.trim() {
            "a" | "A" => Preference::A,
            "b" | "B" => Preference::B,
            "tie" => Preference::Tie,
            other => return Err(format!("{other:?} is not `a`, `b` or `tie`")),
        }),
        LabelSchema::Spans { .. } => Answer::Spans(
            serde_json::from_str::<Vec<Span>>(text)
                .map_err(|e| format!("spans must be a JSON array of {{start, end, label}}: {e}"))?,
        ),
    })
}

/// Keys Label Studio's JSON_MIN export adds to each flat row.
const JSON_MIN_KEYS: [&str; 3] = ["annotator", "annotation_id", "lead_time"];

/// A Label Studio file's tasks, unchecked.
fn label_studio_tasks(text: &str) -> Result<Vec<Value>, ImportErrors> {
    serde_json::from_str(text).map_err(|e| {
        error(
            "task",
            0,
            "json",
            format!("expected a JSON array of Label Studio tasks: {e}"),
        )
        .into()
    })
}

/// The names of the tags that answer like `schema` in the Label Studio config the tasks come
/// from: those of the first result of that type, in an annotation or a prediction.
fn tags_used(tasks: &[Value], schema: &LabelSchema) -> Option<LabelStudioTags> {
    let wanted = tag_type(schema);
    tasks
        .iter()
        .flat_map(|task| {
            ["annotations", "predictions"]
                .into_iter()
                .filter_map(|key| task.get(key).and_then(Value::as_array))
                .flatten()
        })
        .filter_map(|labelled| labelled.get("result").and_then(Value::as_array))
        .flatten()
        .filter(|result| result.get("type").and_then(Value::as_str) == Some(wanted))
        .find_map(|result| {
            let name = |key: &str| {
                let name = result.get(key)?.as_str()?;
                check_tag_name(name).ok().map(|()| name.to_owned())
            };
            Some(LabelStudioTags {
                from_name: name("from_name")?,
                to_name: name("to_name")?,
            })
        })
}

fn parse_label_studio(
    tasks: &[Value],
    schema: &LabelSchema,
    annotations: AnnotationUse,
    skipped: &mut Skipped,
) -> Result<Vec<Item>, ImportErrors> {
    if let Some(row) = tasks.first()
        && row.get("data").is_none()
        && JSON_MIN_KEYS.iter().any(|key| row.get(key).is_some())
    {
        return Err(error(
            "task",
            task_id(row, 1),
            "data",
            "this is Label Studio's JSON_MIN export: flat rows that mix each task's data with its annotations, so the two cannot be told apart. Export JSON instead (the Export button's first choice)",
        )
        .into());
    }
    let mut records = Records::default();
    for (i, task) in tasks.iter().enumerate() {
        records.push(label_studio_task(
            task,
            task_id(task, i + 1),
            schema,
            annotations,
            skipped,
        ));
    }
    records.finish()
}

/// Label Studio's own id of a task, or its place in the file (from 1) when it has none.
fn task_id(task: &Value, position: usize) -> usize {
    task.get("id")
        .and_then(Value::as_u64)
        .and_then(|id| usize::try_from(id).ok())
        .unwrap_or(position)
}

/// The result type of the Label Studio tag that answers like `schema`.
fn tag_type(schema: &LabelSchema) -> &'static str {
    match schema {
        LabelSchema::SingleChoice { .. } | LabelSchema::MultipleChoice { .. } => "choices",
        LabelSchema::FreeText { .. } => "textarea",
        LabelSchema::Rating { .. } => "rating",
        LabelSchema::Pairwise { .. } => "pairwise",
        LabelSchema::Spans { .. } => "labels",
    }
}

fn label_studio_task(
    task: &Value,
    record: usize,
    schema: &LabelSchema,
    annotations: AnnotationUse,
    skipped: &mut Skipped,
) -> Result<Item, ImportError> {
    let answered: Vec<(usize, &Value)> = task
        .get("annotations")
        .and_then(Value::as_array)
        .map(|list| {
            list.iter()
                .enumerate()
                .filter(|(_, a)| a.get("was_cancelled") != Some(&Value::Bool(true)))
                .collect()
        })
        .unwrap_or_default();
    let mut gold = None;
    let mut from_annotations = Vec::new();
    match annotations {
        AnnotationUse::Skip => skipped.annotations += answered.len(),
        AnnotationUse::Gold => {
            if let Some(&first) = answered.first() {
                let (a, annotation) = first;
                let field = format!("annotations[{a}]");
                gold = Some(labelled_answer(
                    annotation, &field, record, schema, skipped,
                )?);
                skipped.annotations_as_gold += 1;
                skipped.annotations += answered.len() - 1;
            }
        }
        AnnotationUse::PreLabels => {
            for &(a, annotation) in &answered {
                let by = annotation
                    .get("completed_by")
                    .map_or_else(|| "someone".to_owned(), Value::to_string);
                from_annotations.push(Prediction {
                    model: format!("Label Studio annotator {by}"),
                    answer: labelled_answer(
                        annotation,
                        &format!("annotations[{a}]"),
                        record,
                        schema,
                        skipped,
                    )?,
                    score: None,
                });
                skipped.annotations_as_pre_labels += 1;
            }
        }
    }
    let data = task
        .get("data")
        .filter(|d| d.is_object())
        .ok_or_else(|| error("task", record, "data", "missing or not an object"))?
        .clone();
    let mut predictions = Vec::new();
    let listed = match task.get("predictions") {
        None | Some(Value::Null) => &Vec::new(),
        Some(Value::Array(list)) => list,
        Some(_) => return Err(error("task", record, "predictions", "must be an array")),
    };
    for (p, prediction) in listed.iter().enumerate() {
        if prediction.is_number() {
            skipped.prediction_ids += 1;
            continue;
        }
        let field = format!("predictions[{p}]");
        let model = prediction
            .get("model_version")
            .and_then(Value::as_str)
            .unwrap_or("unnamed model")
            .to_owned();
        let score = match prediction.get("score") {
            None | Some(Value::Null) => None,
            Some(v) => Some(v.as_f64().ok_or_else(|| {
                error(
                    "task",
                    record,
                    &format!("{field}.score"),
                    "must be a number",
                )
            })?),
        };
        let answer = labelled_answer(prediction, &field, record, schema, skipped)?;
        predictions.push(Prediction {
            model,
            answer,
            score,
        });
    }
    predictions.extend(from_annotations);
    let item = Item {
        data,
        gold,
        predictions,
    };
    checked(item, schema, "task", record)
}

/// The answer a Label Studio prediction or annotation (`labelled`, at `field` of task `record`)
/// gives, with its relations counted in `skipped`.
fn labelled_answer(
    labelled: &Value,
    field: &str,
    record: usize,
    schema: &LabelSchema,
    skipped: &mut Skipped,
) -> Result<Answer, ImportError> {
    let results = labelled
        .get("result")
        .and_then(Value::as_array)
        .ok_or_else(|| {
            error(
                "task",
                record,
                &format!("{field}.result"),
                "must be an array",
            )
        })?;
    skipped.relations += results
        .iter()
        .filter(|r| r.get("type").and_then(Value::as_str) == Some("relation"))
        .count();
    answer_from_results(schema, results).map_err(|(r, message)| {
        let place = r.map_or_else(
            || format!("{field}.result"),
            |r| format!("{field}.result[{r}]"),
        );
        error("task", record, &place, message)
    })
}

/// Converts one prediction's Label Studio results into an answer for `schema`, from the results
/// of the tag type the schema answers with (from the first such tag, by `from_name`); the error
/// names the result's index in the prediction, or none when no result fits.
fn answer_from_results(
    schema: &LabelSchema,
    results: &[Value],
) -> Result<Answer, (Option<usize>, String)> {
    let wanted = tag_type(schema);
    let of_type: Vec<usize> = (0..results.len())
        .filter(|&r| results[r].get("type").and_then(Value::as_str) == Some(wanted))
        .collect();
    let tag = of_type
        .first()
        .map(|&r| results[r].get("from_name").cloned());
    let matching: Vec<usize> = of_type
        .into_iter()
        .filter(|&r| Some(results[r].get("from_name").cloned()) == tag)
        .collect();
    let value_of = |r: usize, key: &str| -> Result<&Value, (Option<usize>, String)> {
        results[r]
            .get("value")
            .and_then(|v| v.get(key))
            .ok_or_else(|| {
                (
                    Some(r),
                    format!(
                        "value.{key} is missing; a {} schema needs it",
                        schema.answer_kind()
                    ),
                )
            })
    };
    let strings = |r: usize, key: &str| -> Result<Vec<String>, (Option<usize>, String)> {
        value_of(r, key)?
            .as_array()
            .and_then(|list| list.iter().map(|v| v.as_str().map(str::to_owned)).collect())
            .ok_or_else(|| (Some(r), format!("value.{key} must be an array of strings")))
    };
    let Some(&first) = matching.first() else {
        if matches!(schema, LabelSchema::Spans { .. }) {
            return Ok(Answer::Spans(Vec::new()));
        }
        let found: Vec<&str> = results
            .iter()
            .filter_map(|r| r.get("type").and_then(Value::as_str))
            .collect();
        return Err((
            None,
            format!(
                "no `{wanted}` result, which a {} schema is answered with (the prediction has {found:?})",
                schema.answer_kind()
            ),
        ));
    };
    Ok(match schema {
        LabelSchema::SingleChoice { .. } => {
            let mut chosen = strings(first, "choices")?;
            if chosen.len() != 1 {
                return Err((
                    Some(first),
                    format!(
                        "value.choices must hold exactly one option, got {}",
                        chosen.len()
                    ),
                ));
            }
            Answer::Choice(chosen.remove(0))
        }
        LabelSchema::MultipleChoice { .. } => Answer::Choices(strings(first, "choices")?),
        LabelSchema::FreeText { .. } => {
            let mut texts = strings(first, "text")?;
            if texts.is_empty() {
                return Err((Some(first), "value.text is empty".into()));
            }
            Answer::Text(texts.remove(0))
        }
        LabelSchema::Rating { .. } => Answer::Rating(
            value_of(first, "rating")?
                .as_i64()
                .and_then(|v| i32::try_from(v).ok())
                .ok_or_else(|| {
                    (
                        Some(first),
                        "value.rating must be a whole number".to_owned(),
                    )
                })?,
        ),
        LabelSchema::Pairwise { .. } => {
            Answer::Preference(match value_of(first, "selected")?.as_str() {
                Some("left") => Preference::A,
                Some("right") => Preference::B,
                Some("tie") => Preference::Tie,
                other => {
                    return Err((
                        Some(first),
                        format!(
                            "value.selected must be \"left\", \"right\" or \"tie\", got {other:?}"
                        ),
                    ));
                }
            })
        }
        LabelSchema::Spans { .. } => {
            let mut spans = Vec::with_capacity(matching.len());
            for &r in &matching {
                let bound = |key| {
                    value_of(r, key)?
                        .as_u64()
                        .and_then(|v| u32::try_from(v).ok())
                        .ok_or_else(|| (Some(r), format!("value.{key} must be a character offset")))
                };
                let mut labels = strings(r, "labels")?;
                if labels.len() != 1 {
                    return Err((
                        Some(r),
                        format!(
                            "value.labels must hold exactly one label, got {}",
                            labels.len()
                        ),
                    ));
                }
                spans.push(Span {
                    start: bound("start")?,
                    end: bound("end")?,
                    label: labels.remove(0),
                });
            }
            spans.sort();
            Answer::Spans(spans)
        }
    })
}

#[cfg(test)]
mod tests;
