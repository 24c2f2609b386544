//! Task types, their label schemas, and the answers contributors submit.
//!
//! Every answer (a contributor's, a gold item's, a model's pre-label, a reviewer's fix) is checked
//! against the project's schema by [`LabelSchema::validate`], whose errors name the field and say
//! what would be accepted.

use serde::{Deserialize, Serialize};

/// The longest free-text answer any schema may allow, in characters.
pub const MAX_TEXT_CHARS: u32 = 100_000;
/// The most options a choice schema may list, and the most spans one answer may mark.
pub const MAX_OPTIONS: usize = 1_000;
/// The widest rating scale, `max − min`: each value is a category truth inference votes on.
pub const MAX_RATING_STEPS: i64 = 100;

/// What contributors are asked to do, with everything needed to check an answer.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum LabelSchema {
    /// Pick exactly one option.
    SingleChoice { options: Vec<String> },
    /// Pick between `min_selected` and `max_selected` options.
    MultipleChoice {
        options: Vec<String>,
        min_selected: u32,
        max_selected: u32,
    },
    /// Write text (a prompt, a response, a caption) of `min_chars..=max_chars` characters.
    FreeText { min_chars: u32, max_chars: u32 },
    /// A whole number from `min` to `max` inclusive.
    Rating { min: i32, max: i32 },
    /// Which of two responses (`a` or `b`) is better; `tie` only when allowed.
    Pairwise { allow_tie: bool },
    /// Mark spans of the item's text field `text_field` with one of `labels` (named entities).
    Spans {
        labels: Vec<String>,
        text_field: String,
    },
}

/// A contributor's answer. Its variant must match the schema's.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Answer {
    Choice(String),
    Choices(Vec<String>),
    Text(String),
    Rating(i32),
    Preference(Preference),
    Spans(Vec<Span>),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Preference {
    A,
    B,
    Tie,
}

/// A labelled character range `start..end` (Unicode scalar values, end exclusive).
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Span {
    pub start: u32,
    pub end: u32,
    pub label: String,
}

/// Why a schema or an answer is not acceptable. Messages name the field and the fix.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SchemaError {
    #[error("the schema needs between 2 and {MAX_OPTIONS} options, got {0}")]
    OptionCount(usize),
    #[error("option {0:?} is listed twice; list each option once")]
    DuplicateOption(String),
    #[error("options must be non-empty text")]
    EmptyOption,
    #[error(
        "min_selected {min} and max_selected {max} must satisfy 0 <= min <= max <= {options} (the number of options), with max >= 1"
    )]
    SelectionBounds { min: u32, max: u32, options: usize },
    #[error(
        "min_chars {min} and max_chars {max} must satisfy 1 <= max, min <= max <= {MAX_TEXT_CHARS}"
    )]
    TextBounds { min: u32, max: u32 },
    #[error(
        "rating bounds min {min} and max {max} must satisfy min < max <= min + {MAX_RATING_STEPS}"
    )]
    RatingBounds { min: i32, max: i32 },
    #[error("span schemas name the item field that holds the text; text_field is empty")]
    NoTextField,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AnswerError {
    #[error("this project expects {expected} answers, got {got}")]
    WrongKind {
        expected: &'static str,
        got: &'static str,
    },
    #[error("{0:?} is not an option; choose one of {1:?}")]
    UnknownOption(String, Vec<String>),
    #[error("{0:?} is selected twice; select each option once")]
    RepeatedOption(String),
    #[error("select between {min} and {max} options, got {got}")]
    SelectionCount { min: u32, max: u32, got: usize },
    #[error("text must be {min} to {max} characters, got {got}")]
    TextLength { min: u32, max: u32, got: usize },
    #[error("rating must be from {min} to {max}, got {got}")]
    RatingRange { min: i32, max: i32, got: i32 },
    #[error("this comparison does not allow a tie; answer `a` or `b`")]
    TieNotAllowed,
    #[error("the item has no text field {0:?} to mark spans in")]
    MissingText(String),
    #[error(
        "span {index}: {start}..{end} must satisfy start < end <= {len} (characters in the text)"
    )]
    SpanBounds {
        index: usize,
        start: u32,
        end: u32,
        len: usize,
    },
    #[error("span {index}: label {label:?} is not one of {known:?}")]
    UnknownSpanLabel {
        index: usize,
        label: String,
        known: Vec<String>,
    },
    #[error(
        "span {index} overlaps or precedes the span before it; give spans sorted by start, without overlaps"
    )]
    SpanOrder { index: usize },
    #[error("at most {MAX_OPTIONS} spans per answer, got {0}")]
    TooManySpans(usize),
}

impl LabelSchema {
    /// Checks the schema itself, before any project uses it.
    pub fn validate_schema(&self) -> Result<(), SchemaError> {
        match self {
            LabelSchema::SingleChoice { options } => check_options(options),
            LabelSchema::MultipleChoice {
                options,
                min_selected,
                max_selected,
            } => {
                check_options(options)?;
                if min_selected > max_selected
                    || *max_selected == 0
                    || *max_selected as usize > options.len()
                {
                    return Err(SchemaError::SelectionBounds {
                        min: *min_selected,
                        max: *max_selected,
                        options: options.len(),
                    });
                }
                Ok(())
            }
            LabelSchema::FreeText {
                min_chars,
                max_chars,
            } => {
                if min_chars > max_chars || *max_chars == 0 || *max_chars > MAX_TEXT_CHARS {
                    return Err(SchemaError::TextBounds {
                        min: *min_chars,
                        max: *max_chars,
                    });
                }
                Ok(())
            }
            LabelSchema::Rating { min, max } => {
                if min >= max || i64::from(*max) - i64::from(*min) > MAX_RATING_STEPS {
                    return Err(SchemaError::RatingBounds {
                        min: *min,
                        max: *max,
                    });
                }
                Ok(())
            }
            LabelSchema::Pairwise { .. } => Ok(()),
            LabelSchema::Spans { labels, text_field } => {
                if text_field.is_empty() {
                    return Err(SchemaError::NoTextField);
                }
                check_options(labels)
            }
        }
    }

    /// Checks `answer` for an item whose data is `item_data` (only span answers look at it).
    pub fn validate(
        &self,
        answer: &Answer,
        item_data: &serde_json::Value,
    ) -> Result<(), AnswerError> {
        match (self, answer) {
            (LabelSchema::SingleChoice { options }, Answer::Choice(choice)) => {
                known_option(options, choice)
            }
            (
                LabelSchema::MultipleChoice {
                    options,
                    min_selected,
                    max_selected,
                },
                Answer::Choices(chosen),
            ) => {
                for (i, choice) in chosen.iter().enumerate() {
                    known_option(options, choice)?;
                    if chosen[..i].contains(choice) {
                        return Err(AnswerError::RepeatedOption(choice.clone()));
                    }
                }
                if chosen.len() < *min_selected as usize || chosen.len() > *max_selected as usize {
                    return Err(AnswerError::SelectionCount {
                        min: *min_selected,
                        max: *max_selected,
                        got: chosen.len(),
                    });
                }
                Ok(())
            }
            (
                LabelSchema::FreeText {
                    min_chars,
                    max_chars,
                },
                Answer::Text(text),
            ) => {
                let chars = text.trim().chars().count();
                if chars < *min_chars as usize || chars > *max_chars as usize {
                    return Err(AnswerError::TextLength {
                        min: *min_chars,
                        max: *max_chars,
                        got: chars,
                    });
                }
                Ok(())
            }
            (LabelSchema::Rating { min, max }, Answer::Rating(value)) => {
                if value < min || value > max {
                    return Err(AnswerError::RatingRange {
                        min: *min,
                        max: *max,
                        got: *value,
                    });
                }
                Ok(())
            }
            (LabelSchema::Pairwise { allow_tie }, Answer::Preference(p)) => {
                if *p == Preference::Tie && !allow_tie {
                    return Err(AnswerError::TieNotAllowed);
                }
                Ok(())
            }
            (LabelSchema::Spans { labels, text_field }, Answer::Spans(spans)) => {
                let text = item_data
                    .get(text_field)
                    .and_then(|v| v.as_str())
                    .ok_or_else(|| AnswerError::MissingText(text_field.clone()))?;
                validate_spans(labels, spans, text.chars().count())
            }
            (schema, answer) => Err(AnswerError::WrongKind {
                expected: schema.answer_kind(),
                got: answer.kind(),
            }),
        }
    }

    /// The task type's name, as the schema's JSON `type` says it (`single_choice`, `spans` …).
    pub fn kind(&self) -> &'static str {
        match self {
            LabelSchema::SingleChoice { .. } => "single_choice",
            LabelSchema::MultipleChoice { .. } => "multiple_choice",
            LabelSchema::FreeText { .. } => "free_text",
            LabelSchema::Rating { .. } => "rating",
            LabelSchema::Pairwise { .. } => "pairwise",
            LabelSchema::Spans { .. } => "spans",
        }
    }

    /// The name of the answer variant this schema takes.
    pub fn answer_kind(&self) -> &'static str {
        match self {
            LabelSchema::SingleChoice { .. } => "choice",
            LabelSchema::MultipleChoice { .. } => "choices",
            LabelSchema::FreeText { .. } => "text",
            LabelSchema::Rating { .. } => "rating",
            LabelSchema::Pairwise { .. } => "preference",
            LabelSchema::Spans { .. } => "spans",
        }
    }

    /// Whether answers are categories that truth inference can vote on. Free text and spans
    /// have no categories: reviewers decide what is accepted.
    pub fn is_categorical(&self) -> bool {
        !matches!(
            self,
            LabelSchema::FreeText { .. } | LabelSchema::Spans { .. }
        )
    }

    /// Every category in a stable order (ties in truth inference go to the first), or `None`
    /// for reviewed types. A multiple-choice category is a set of options, so only the sets
    /// actually answered are categories; they are listed by [`Answer::category`] instead.
    pub fn categories(&self) -> Option<Vec<String>> {
        match self {
            LabelSchema::SingleChoice { options } => Some(options.clone()),
            LabelSchema::Rating { min, max } => {
                Some((*min..=*max).map(|v| v.to_string()).collect())
            }
            LabelSchema::Pairwise { .. } => Some(vec!["a".into(), "b".into(), "tie".into()]),
            _ => None,
        }
    }
}

impl Answer {
    pub fn kind(&self) -> &'static str {
        match self {
            Answer::Choice(_) => "choice",
            Answer::Choices(_) => "choices",
            Answer::Text(_) => "text",
            Answer::Rating(_) => "rating",
            Answer::Preference(_) => "preference",
            Answer::Spans(_) => "spans",
        }
    }

    /// The category this answer votes for, for categorical schemas: the option, the rating, the
    /// preference, or the sorted option set joined by `|`.
    pub fn category(&self) -> Option<String> {
        match self {
            Answer::Choice(c) => Some(c.clone()),
            Answer::Rating(v) => Some(v.to_string()),
            Answer::Preference(p) => Some(
                match p {
                    Preference::A => "a",
                    Preference::B => "b",
                    Preference::Tie => "tie",
                }
                .into(),
            ),
            Answer::Choices(chosen) => {
                let mut sorted = chosen.clone();
                sorted.sort();
                Some(sorted.join("|"))
            }
            Answer::Text(_) | Answer::Spans(_) => None,
        }
    }
}

fn check_options(options: &[String]) -> Result<(), SchemaError> {
    if options.len() < 2 || options.len() > MAX_OPTIONS {
        return Err(SchemaError::OptionCount(options.len()));
    }
    for (i, option) in options.iter().enumerate() {
        if option.trim().is_empty() {
            return Err(SchemaError::EmptyOption);
        }
        if options[..i].contains(option) {
            return Err(SchemaError::DuplicateOption(option.clone()));
        }
    }
    Ok(())
}

fn known_option(options: &[String], choice: &str) -> Result<(), AnswerError> {
    if options.iter().any(|o| o == choice) {
        Ok(())
    } else {
        Err(AnswerError::UnknownOption(
            choice.to_owned(),
            options.to_vec(),
        ))
    }
}

fn validate_spans(labels: &[String], spans: &[Span], len: usize) -> Result<(), AnswerError> {
    if spans.len() > MAX_OPTIONS {
        return Err(AnswerError::TooManySpans(spans.len()));
    }
    for (index, span) in spans.iter().enumerate() {
        if span.start >= span.end || span.end as usize > len {
            return Err(AnswerError::SpanBounds {
                index,
                start: span.start,
                end: span.end,
                len,
            });
        }
        if !labels.contains(&span.label) {
            return Err(AnswerError::UnknownSpanLabel {
                index,
                label: span.label.clone(),
                known: labels.to_vec(),
            });
        }
        if index > 0 && span.start < spans[index - 1].end {
            return Err(AnswerError::SpanOrder { index });
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests;
