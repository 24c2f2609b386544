//! The item importers take files from outside (an upload, `caravan task import`): whatever the
//! bytes, each format under each task type answers with items or with errors naming records,
//! and never panics. Three kinds of input: arbitrary text; JSON-shaped records built from
//! random values (so that parsing gets past the first character and into the fields); and the
//! files Label Studio itself exported (`label_studio/`), cut and with bytes changed.
//!
//! `PROPTEST_CASES` sets the cases per property (default 256): run them by the thousand when
//! fuzzing in earnest. Each property prints its count of inputs as `fuzzed item imports: N inputs`.

use caravan_tasks::import::{AnnotationUse, ImportFormat, import_file};
use caravan_tasks::schema::LabelSchema;
use proptest::prelude::*;
use proptest::test_runner::{Config, TestRunner};
use serde_json::Value;

const FORMATS: [ImportFormat; 3] = [
    ImportFormat::Jsonl,
    ImportFormat::Csv,
    ImportFormat::LabelStudio,
];
const USES: [AnnotationUse; 3] = [
    AnnotationUse::Skip,
    AnnotationUse::Gold,
    AnnotationUse::PreLabels,
];

fn schemas() -> Vec<LabelSchema> {
    vec![
        LabelSchema::SingleChoice {
            options: vec!["Positive".into(), "Negative".into()],
        },
        LabelSchema::MultipleChoice {
            options: vec!["a".into(), "b".into(), "c".into()],
            min_selected: 1,
            max_selected: 2,
        },
        LabelSchema::FreeText {
            min_chars: 1,
            max_chars: 50,
        },
        LabelSchema::Rating { min: 1, max: 5 },
        LabelSchema::Pairwise { allow_tie: true },
        LabelSchema::Spans {
            labels: vec!["PER".into(), "LOC".into()],
            text_field: "text".into(),
        },
    ]
}

/// Runs `test` on inputs from `strategy`, as many as proptest's own `PROPTEST_CASES` asks
/// (default 256), and prints how many it generated as `fuzzed item imports: N inputs`.
fn fuzz<S: Strategy>(strategy: S, test: impl Fn(S::Value) -> Result<(), TestCaseError>) {
    let inputs = std::cell::Cell::new(0u64);
    TestRunner::new(Config {
        failure_persistence: None,
        ..Config::default()
    })
    .run(&strategy, |input| {
        inputs.set(inputs.get() + 1);
        test(input)
    })
    .unwrap();
    println!("fuzzed item imports: {} inputs", inputs.get());
}

/// Every format under every task type and annotation use: an answer, never a panic. An
/// error always names at least one record.
fn import_everywhere(text: &str) -> Result<(), TestCaseError> {
    for schema in schemas() {
        for format in FORMATS {
            for annotations in USES {
                if let Err(errors) = import_file(format, text, &schema, annotations) {
                    prop_assert!(!errors.first().message.is_empty());
                }
            }
        }
    }
    Ok(())
}

/// A JSON value of bounded size whose leaves look like what the files hold.
fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        any::<f64>()
            .prop_map(|f| serde_json::Number::from_f64(f).map_or(Value::Null, Value::Number)),
        prop::sample::select(vec![
            "text", "Positive", "PER", "choices", "labels", "rating", "textarea", "a", "b", "tie",
            "", "😀", "\u{0}",
        ])
        .prop_map(|s| Value::String(s.into())),
        ".{0,12}".prop_map(Value::String),
    ];
    leaf.prop_recursive(4, 48, 6, |inner| {
        let keys = prop::sample::select(vec![
            "data",
            "text",
            "id",
            "annotations",
            "predictions",
            "result",
            "value",
            "choices",
            "labels",
            "start",
            "end",
            "from_name",
            "to_name",
            "type",
            "rating",
            "gold",
            "image",
            "model_version",
            "score",
        ]);
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..5).prop_map(Value::Array),
            prop::collection::btree_map(keys, inner, 0..6).prop_map(|map| {
                Value::Object(map.into_iter().map(|(k, v)| (k.to_owned(), v)).collect())
            }),
        ]
    })
}

#[test]
fn arbitrary_text_gets_an_answer_in_every_format() {
    fuzz(any::<String>(), |text| import_everywhere(&text));
}

#[test]
fn arbitrary_bytes_read_as_text_get_an_answer_in_every_format() {
    fuzz(prop::collection::vec(any::<u8>(), 0..512), |bytes| {
        import_everywhere(&String::from_utf8_lossy(&bytes))
    });
}

#[test]
fn json_shaped_records_get_an_answer_in_every_format() {
    fuzz(prop::collection::vec(json_value(), 0..6), |records| {
        let lines: Vec<String> = records.iter().map(Value::to_string).collect();
        import_everywhere(&lines.join("\n"))?;
        import_everywhere(&Value::Array(records).to_string())
    });
}

#[test]
fn label_studio_s_own_exports_cut_and_changed_get_an_answer() {
    let dir = format!("{}/tests/label_studio", env!("CARGO_MANIFEST_DIR"));
    let files: Vec<Vec<u8>> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|entry| std::fs::read(entry.unwrap().path()).unwrap())
        .collect();
    assert!(files.len() >= 10, "the Label Studio fixtures are in {dir}");
    let changes = prop::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 0..8);
    fuzz(
        (
            prop::sample::select(files),
            changes,
            any::<prop::sample::Index>(),
        ),
        |(mut file, changes, cut)| {
            for (at, byte) in changes {
                if !file.is_empty() {
                    let at = at.index(file.len());
                    file[at] = byte;
                }
            }
            file.truncate(cut.index(file.len() + 1));
            import_everywhere(&String::from_utf8_lossy(&file))
        },
    );
}
