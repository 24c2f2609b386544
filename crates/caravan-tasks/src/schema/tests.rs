use super::*;
use serde_json::json;

fn options(names: &[&str]) -> Vec<String> {
    names.iter().map(|s| s.to_string()).collect()
}

#[test]
fn schemas_with_impossible_bounds_are_refused() {
    let bad = [
        (
            LabelSchema::SingleChoice {
                options: options(&["cat"]),
            },
            SchemaError::OptionCount(1),
        ),
        (
            LabelSchema::SingleChoice {
                options: options(&["cat", "dog", "cat"]),
            },
            SchemaError::DuplicateOption("cat".into()),
        ),
        (
            LabelSchema::MultipleChoice {
                options: options(&["a", "b"]),
                min_selected: 1,
                max_selected: 3,
            },
            SchemaError::SelectionBounds {
                min: 1,
                max: 3,
                options: 2,
            },
        ),
        (
            LabelSchema::FreeText {
                min_chars: 50,
                max_chars: 10,
            },
            SchemaError::TextBounds { min: 50, max: 10 },
        ),
        (
            LabelSchema::Rating { min: 5, max: 5 },
            SchemaError::RatingBounds { min: 5, max: 5 },
        ),
        (
            LabelSchema::Rating { min: 0, max: 1000 },
            SchemaError::RatingBounds { min: 0, max: 1000 },
        ),
        (
            LabelSchema::Spans {
                labels: options(&["PER", "ORG"]),
                text_field: String::new(),
            },
            SchemaError::NoTextField,
        ),
    ];
    for (schema, error) in bad {
        assert_eq!(schema.validate_schema(), Err(error));
    }
}

#[test]
fn every_task_type_accepts_a_good_answer_and_names_what_is_wrong_with_a_bad_one() {
    let none = json!({});
    let choice = LabelSchema::SingleChoice {
        options: options(&["cat", "dog"]),
    };
    assert_eq!(
        choice.validate(&Answer::Choice("dog".into()), &none),
        Ok(())
    );
    assert_eq!(
        choice.validate(&Answer::Choice("cow".into()), &none),
        Err(AnswerError::UnknownOption(
            "cow".into(),
            options(&["cat", "dog"])
        ))
    );
    assert_eq!(
        choice.validate(&Answer::Rating(3), &none),
        Err(AnswerError::WrongKind {
            expected: "choice",
            got: "rating"
        })
    );

    let multi = LabelSchema::MultipleChoice {
        options: options(&["red", "green", "blue"]),
        min_selected: 1,
        max_selected: 2,
    };
    let pick = |names: &[&str]| Answer::Choices(options(names));
    assert_eq!(multi.validate(&pick(&["red", "blue"]), &none), Ok(()));
    assert_eq!(
        multi.validate(&pick(&[]), &none),
        Err(AnswerError::SelectionCount {
            min: 1,
            max: 2,
            got: 0
        })
    );
    assert_eq!(
        multi.validate(&pick(&["red", "red"]), &none),
        Err(AnswerError::RepeatedOption("red".into()))
    );

    let text = LabelSchema::FreeText {
        min_chars: 5,
        max_chars: 12,
    };
    assert_eq!(
        text.validate(&Answer::Text("héllo wörld".into()), &none),
        Ok(())
    );
    assert_eq!(
        text.validate(&Answer::Text("  hi  ".into()), &none),
        Err(AnswerError::TextLength {
            min: 5,
            max: 12,
            got: 2
        })
    );

    let rating = LabelSchema::Rating { min: 1, max: 5 };
    assert_eq!(
        rating.validate(&Answer::Rating(6), &none),
        Err(AnswerError::RatingRange {
            min: 1,
            max: 5,
            got: 6
        })
    );

    let pairwise = LabelSchema::Pairwise { allow_tie: false };
    assert_eq!(
        pairwise.validate(&Answer::Preference(Preference::B), &none),
        Ok(())
    );
    assert_eq!(
        pairwise.validate(&Answer::Preference(Preference::Tie), &none),
        Err(AnswerError::TieNotAllowed)
    );
}

#[test]
fn spans_are_checked_against_the_item_text_in_characters() {
    let schema = LabelSchema::Spans {
        labels: options(&["PER", "LOC"]),
        text_field: "text".into(),
    };
    let item = json!({"text": "Zoë lives in Oslo"});
    let span = |start, end, label: &str| Span {
        start,
        end,
        label: label.into(),
    };
    let good = Answer::Spans(vec![span(0, 3, "PER"), span(13, 17, "LOC")]);
    assert_eq!(schema.validate(&good, &item), Ok(()));
    assert_eq!(
        schema.validate(&Answer::Spans(vec![span(13, 18, "LOC")]), &item),
        Err(AnswerError::SpanBounds {
            index: 0,
            start: 13,
            end: 18,
            len: 17
        })
    );
    assert_eq!(
        schema.validate(&Answer::Spans(vec![span(0, 3, "ORG")]), &item),
        Err(AnswerError::UnknownSpanLabel {
            index: 0,
            label: "ORG".into(),
            known: options(&["PER", "LOC"])
        })
    );
    assert_eq!(
        schema.validate(
            &Answer::Spans(vec![span(0, 5, "PER"), span(4, 8, "LOC")]),
            &item
        ),
        Err(AnswerError::SpanOrder { index: 1 })
    );
    assert_eq!(
        schema.validate(&good, &json!({"body": "x"})),
        Err(AnswerError::MissingText("text".into()))
    );
}

#[test]
fn answers_round_trip_through_json_in_the_documented_shape() {
    let answer = Answer::Spans(vec![Span {
        start: 0,
        end: 3,
        label: "PER".into(),
    }]);
    let text = serde_json::to_string(&answer).unwrap();
    assert_eq!(text, r#"{"spans":[{"start":0,"end":3,"label":"PER"}]}"#);
    assert_eq!(serde_json::from_str::<Answer>(&text).unwrap(), answer);
    let schema: LabelSchema = serde_json::from_str(r#"{"type":"rating","min":1,"max":5}"#).unwrap();
    assert_eq!(schema, LabelSchema::Rating { min: 1, max: 5 });
    assert_eq!(
        Answer::Choices(options(&["b", "a"])).category().as_deref(),
        Some("a|b")
    );
}
