//! An item drawn for the labeling screen: its fields (text as text, arrays of pixel values as
//! crisp pictures), the models' suggestions with their confidence (never chosen for the
//! person), and the controls of the project's task type, each with its key.

use caravan_tasks::board::Assignment;
use caravan_tasks::project::ProjectSpec;
use caravan_tasks::schema::{Answer, LabelSchema, Preference};
use serde_json::Value;

/// The largest picture drawn from an array of numbers: 64 × 64 values.
const MAX_PIXELS: usize = 4096;
/// How wide a picture is drawn, in CSS pixels (the 8 × 8 digits become 32-pixel squares).
const PICTURE_SIZE: usize = 256;

/// One option of a choice, rating or span label, with its key.
pub struct Choice {
    pub key: String,
    pub value: String,
}

/// One field of the item's data.
pub struct Field {
    pub name: String,
    /// Text to show as is (escaped by the template).
    pub text: Option<String>,
    /// A drawn picture: SVG made here from numbers only.
    pub picture: Option<String>,
}

/// Everything the item fragment shows.
pub struct ItemView {
    pub item: String,
    pub kind: &'static str,
    pub handed_out_ms: u64,
    pub lease_until_ms: u64,
    pub now_ms: u64,
    pub min_ms: u64,
    pub exam: Option<String>,
    pub fields: Vec<Field>,
    pub suggestions: Vec<String>,
    pub choices: Vec<Choice>,
    /// How the choices are picked: `radio` (one), `checkbox` (several), or empty when the
    /// task type has no options to pick (free text, pairwise, spans draw their own controls).
    pub input_type: &'static str,
    /// The form field the picked options go in, as the page's script reads them.
    pub input_name: &'static str,
    /// What the group of options asks, as its legend says it.
    pub legend: String,
    /// Every option is a few characters (digits, a scale): they sit side by side in a grid,
    /// even on a phone.
    pub compact: bool,
    pub min_selected: u32,
    pub max_selected: u32,
    pub min_chars: u32,
    pub max_chars: u32,
    pub tie: bool,
    pub side_a: Option<Field>,
    pub side_b: Option<Field>,
    /// The text spans are marked in (a field of the item).
    pub span_text: String,
    /// An answer taken back to be changed, as JSON, which the screen puts back in the form
    /// (empty for a fresh item); on the review screen, the answer under review.
    pub taken_back: String,
    /// On the review screen: the judgment under review.
    pub review: Option<u32>,
}

fn key_of(index: usize) -> String {
    match index {
        0..9 => (index + 1).to_string(),
        9 => "0".to_owned(),
        _ => String::new(),
    }
}

/// The options with their keys: by position (1 … 9, then 0), except when the options are
/// themselves distinct single digits (the digits to recognise, a 0–9 rating), which are their
/// own keys, so pressing 7 picks "7".
fn choices(values: impl IntoIterator<Item = String>) -> Vec<Choice> {
    let values: Vec<String> = values.into_iter().collect();
    let single_digits = values
        .iter()
        .all(|value| value.len() == 1 && value.as_bytes()[0].is_ascii_digit());
    let distinct = values
        .iter()
        .collect::<std::collections::BTreeSet<_>>()
        .len()
        == values.len();
    values
        .into_iter()
        .enumerate()
        .map(|(index, value)| Choice {
            key: if single_digits && distinct {
                value.clone()
            } else {
                key_of(index)
            },
            value,
        })
        .collect()
}

/// An array of numbers whose length is a square (4 to [`MAX_PIXELS`]) drawn as a greyscale
/// picture, dark for high values (ink on paper, as the digits are), with square edges kept sharp.
pub fn picture(values: &[Value]) -> Option<String> {
    let numbers: Vec<f64> = values.iter().map(Value::as_f64).collect::<Option<_>>()?;
    let side = (numbers.len() as f64).sqrt() as usize;
    if numbers.len() < 4 || numbers.len() > MAX_PIXELS || side * side != numbers.len() {
        return None;
    }
    let low = numbers
        .iter()
        .copied()
        .fold(f64::INFINITY, f64::min)
        .min(0.0);
    let high = numbers.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    let range = if high > low { high - low } else { 1.0 };
    let mut svg = format!(
        r#"<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {side} {side}" width="{PICTURE_SIZE}" height="{PICTURE_SIZE}" shape-rendering="crispEdges" role="img" aria-label="a {side} by {side} picture">"#
    );
    for (index, value) in numbers.iter().enumerate() {
        let grey = 255 - (((value - low) / range) * 255.0).round().clamp(0.0, 255.0) as u8;
        svg.push_str(&format!(
            r#"<rect x="{}" y="{}" width="1" height="1" fill="rgb({grey},{grey},{grey})"/>"#,
            index % side,
            index / side
        ));
    }
    svg.push_str("</svg>");
    Some(svg)
}

fn field(name: &str, value: &Value) -> Field {
    let (text, picture) = match value {
        Value::String(text) => (Some(text.clone()), None),
        Value::Array(values) => match picture(values) {
            Some(svg) => (None, Some(svg)),
            None => (Some(value.to_string()), None),
        },
        Value::Null => (Some(String::new()), None),
        other => (Some(other.to_string()), None),
    };
    Field {
        name: name.to_owned(),
        text,
        picture,
    }
}

/// The two responses a pairwise item compares, by the names such items use.
const SIDES: [(&str, &str); 4] = [
    ("a", "b"),
    ("response_a", "response_b"),
    ("left", "right"),
    ("A", "B"),
];

fn answer_text(answer: &Answer) -> String {
    match answer {
        Answer::Choice(choice) => choice.clone(),
        Answer::Choices(choices) => choices.join(", "),
        Answer::Text(text) => text.clone(),
        Answer::Rating(value) => value.to_string(),
        Answer::Preference(Preference::A) => "A is better".to_owned(),
        Answer::Preference(Preference::B) => "B is better".to_owned(),
        Answer::Preference(Preference::Tie) => "a tie".to_owned(),
        Answer::Spans(spans) => spans
            .iter()
            .map(|span| format!("{} at {}–{}", span.label, span.start, span.end))
            .collect::<Vec<_>>()
            .join(", "),
    }
}

/// The view of `assignment` on a project with `spec`, drawn at `now_ms`.
pub fn item_view(spec: &ProjectSpec, assignment: &Assignment, now_ms: u64) -> ItemView {
    let data = assignment.data.as_object().cloned().unwrap_or_default();
    let mut view = ItemView {
        item: assignment.item.to_string(),
        kind: spec.schema.kind(),
        handed_out_ms: assignment.handed_out_ms,
        lease_until_ms: assignment.lease_until_ms,
        now_ms,
        min_ms: u64::from(spec.min_seconds_per_item) * 1000,
        exam: assignment
            .exam_question
            .map(|q| format!("Exam question {} of {}", q.number, q.of)),
        fields: Vec::new(),
        suggestions: assignment
            .suggestions
            .iter()
            .map(|suggestion| match suggestion.score {
                Some(score) => format!(
                    "{} — {}, {:.0}% confident",
                    answer_text(&suggestion.answer),
                    suggestion.model,
                    score * 100.0
                ),
                None => format!("{} — {}", answer_text(&suggestion.answer), suggestion.model),
            })
            .collect(),
        choices: Vec::new(),
        input_type: "",
        input_name: "",
        legend: String::new(),
        taken_back: String::new(),
        review: None,
        compact: false,
        min_selected: 0,
        max_selected: 0,
        min_chars: 0,
        max_chars: 0,
        tie: false,
        side_a: None,
        side_b: None,
        span_text: String::new(),
    };
    let mut hidden: Vec<&str> = Vec::new();
    match &spec.schema {
        LabelSchema::SingleChoice { options } => {
            view.choices = choices(options.iter().cloned());
            (view.input_type, view.input_name) = ("radio", "choice");
            view.legend = "Your answer".to_owned();
        }
        LabelSchema::MultipleChoice {
            options,
            min_selected,
            max_selected,
        } => {
            view.choices = choices(options.iter().cloned());
            (view.input_type, view.input_name) = ("checkbox", "choices");
            view.legend = if min_selected == max_selected {
                format!("Pick {min_selected}")
            } else {
                format!("Pick {min_selected} to {max_selected}")
            };
            view.min_selected = *min_selected;
            view.max_selected = *max_selected;
        }
        LabelSchema::FreeText {
            min_chars,
            max_chars,
        } => {
            view.min_chars = *min_chars;
            view.max_chars = *max_chars;
        }
        LabelSchema::Rating { min, max } => {
            view.choices = choices((*min..=*max).map(|value| value.to_string()));
            (view.input_type, view.input_name) = ("radio", "rating");
            view.legend = "Your rating".to_owned();
        }
        LabelSchema::Pairwise { allow_tie } => {
            view.tie = *allow_tie;
            if let Some((a, b)) = SIDES
                .iter()
                .find(|(a, b)| data.contains_key(*a) && data.contains_key(*b))
            {
                view.side_a = Some(field("A", &data[*a]));
                view.side_b = Some(field("B", &data[*b]));
                hidden.extend([*a, *b]);
            }
        }
        LabelSchema::Spans { labels, text_field } => {
            view.choices = choices(labels.iter().cloned());
            view.span_text = data
                .get(text_field)
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_owned();
            hidden.push(text_field);
        }
    }
    view.compact = view
        .choices
        .iter()
        .all(|choice| choice.value.chars().count() <= 4);
    view.fields = data
        .iter()
        .filter(|(name, _)| !hidden.contains(&name.as_str()))
        .map(|(name, value)| field(name, value))
        .collect();
    view
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn digit_options_are_their_own_keys_and_others_go_by_position() {
        let digits = choices((0..10).map(|d| d.to_string()));
        assert_eq!(digits[0].key, "0");
        assert_eq!(digits[7].key, "7");
        let ratings = choices((1..=5).map(|d| d.to_string()));
        assert_eq!(ratings[0].key, "1");
        let words = choices(["pos", "neg"].map(str::to_owned));
        assert_eq!((words[0].key.as_str(), words[1].key.as_str()), ("1", "2"));
        let wide = choices((0..12).map(|d| format!("option {d}")));
        assert_eq!(wide[9].key, "0");
        assert_eq!(wide[10].key, "", "past ten options there is no key");
    }

    #[test]
    fn a_square_array_of_numbers_is_drawn_dark_where_values_are_high() {
        let mut values = vec![json!(0); 64];
        values[9] = json!(16);
        let svg = picture(&values).expect("64 numbers make an 8 by 8 picture");
        assert!(svg.contains(r#"viewBox="0 0 8 8""#));
        assert!(svg.contains(r#"shape-rendering="crispEdges""#));
        assert!(svg.contains(r#"<rect x="1" y="1" width="1" height="1" fill="rgb(0,0,0)"/>"#));
        assert!(
            svg.contains(r#"<rect x="0" y="0" width="1" height="1" fill="rgb(255,255,255)"/>"#)
        );
        assert_eq!(svg.matches("<rect").count(), 64);
        assert!(picture(&vec![json!(1); 63]).is_none(), "not a square");
        assert!(picture(&[json!("a"), json!(1), json!(2), json!(3)]).is_none());
    }
}
