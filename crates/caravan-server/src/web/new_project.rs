//! The requester's form for a new project: the task type with its schema (options, scale,
//! length range, span labels), the checks (exam, gold rate, skill bar, minimum time, daily cap),
//! overlap with its dynamic top-up, deadline, truth-inference method, and the budget, escrowed
//! from the requester's deposited balance at once. A refused form comes back with everything
//! typed still in it and every problem listed, each linked to its field.

use std::collections::BTreeMap;
use std::sync::Arc;

use askama::Template;
use axum::Form;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use caravan_core::{Address, Ppm, Token};
use caravan_node::Node;
use caravan_node::desk::DeskError;
use caravan_tasks::inference::Method;
use caravan_tasks::project::{Exam, Overlap, ProjectSpec, QueueOrder, SpecError};
use caravan_tasks::schema::LabelSchema;
use serde::Deserialize;

use super::page::{Chrome, PageError, Viewer, render};
use crate::error::blocking;

/// Everything the form sends, as typed; kept as text so a refused form shows it back unchanged.
#[derive(Clone, Debug, Deserialize)]
#[serde(default)]
pub struct ProjectForm {
    pub csrf: String,
    pub title: String,
    pub instructions: String,
    pub kind: String,
    pub options: String,
    pub min_selected: String,
    pub max_selected: String,
    pub min_chars: String,
    pub max_chars: String,
    pub rating_min: String,
    pub rating_max: String,
    pub allow_tie: Option<String>,
    pub span_labels: String,
    pub text_field: String,
    pub token: String,
    pub bounty: String,
    pub budget: String,
    pub overlap_min: String,
    pub overlap_max: String,
    pub confidence: String,
    pub gold_rate: String,
    pub exam_questions: String,
    pub pass_mark: String,
    pub skill_bar: String,
    pub gold_grace: String,
    pub min_seconds: String,
    pub daily_cap: String,
    pub lease_minutes: String,
    pub deadline: String,
    pub method: String,
    pub order: String,
}

impl Default for ProjectForm {
    /// A fresh form: a two-option question, three answers per item topped up to five while
    /// the label is less than 90% sure, one check question in ten, and a deadline left empty.
    fn default() -> ProjectForm {
        let text = |s: &str| s.to_owned();
        ProjectForm {
            csrf: String::new(),
            title: String::new(),
            instructions: String::new(),
            kind: text("single_choice"),
            options: String::new(),
            min_selected: text("1"),
            max_selected: text("2"),
            min_chars: text("1"),
            max_chars: text("2000"),
            rating_min: text("1"),
            rating_max: text("5"),
            allow_tie: None,
            span_labels: String::new(),
            text_field: text("text"),
            token: String::new(),
            bounty: String::new(),
            budget: String::new(),
            overlap_min: text("3"),
            overlap_max: text("5"),
            confidence: text("90%"),
            gold_rate: text("10%"),
            exam_questions: text("0"),
            pass_mark: text("80%"),
            skill_bar: text("70%"),
            gold_grace: text("3"),
            min_seconds: text("3"),
            daily_cap: text("500"),
            lease_minutes: text("10"),
            deadline: String::new(),
            method: text("ds"),
            order: text("import_order"),
        }
    }
}

/// One thing wrong with the form: the field's id (the page links to it) and what to change.
#[derive(Clone, Debug, PartialEq)]
pub struct FieldProblem {
    pub field: &'static str,
    pub message: String,
}

/// The task types the form offers, with what each asks of a contributor.
const KINDS: [(&str, &str); 6] = [
    ("single_choice", "One option"),
    ("multiple_choice", "Several options"),
    ("rating", "A rating on a scale"),
    ("pairwise", "Which of two is better"),
    ("free_text", "Written text"),
    ("spans", "Marked spans of text"),
];

const METHODS: [(&str, &str); 4] = [
    (
        "ds",
        "Dawid-Skene: learns each contributor's confusions (recommended)",
    ),
    ("glad", "GLAD: weighs contributors and item difficulty"),
    ("wawa", "WAWA: weights by agreement with the majority"),
    ("mv", "Majority vote"),
];

struct Problems(Vec<FieldProblem>);

impl Problems {
    fn add(&mut self, field: &'static str, message: impl ToString) {
        self.0.push(FieldProblem {
            field,
            message: message.to_string(),
        });
    }

    /// `text` as a whole number for `field`, or a problem and `None`.
    fn number<T: std::str::FromStr>(
        &mut self,
        field: &'static str,
        label: &str,
        text: &str,
    ) -> Option<T> {
        match text.trim().parse() {
            Ok(value) => Some(value),
            Err(_) => {
                self.add(
                    field,
                    format!("{label}: {:?} is not a whole number.", text.trim()),
                );
                None
            }
        }
    }

    fn percent(&mut self, field: &'static str, label: &str, text: &str) -> Option<Ppm> {
        match Ppm::from_percent_text(text) {
            Ok(value) => Some(value),
            Err(why) => {
                self.add(
                    field,
                    format!("{label}: {why}. Write a percentage such as 10%."),
                );
                None
            }
        }
    }
}

/// The non-empty lines of a list typed one per line.
fn lines(text: &str) -> Vec<String> {
    text.lines()
        .map(str::trim)
        .filter(|line| !line.is_empty())
        .map(str::to_owned)
        .collect()
}

/// Milliseconds since the Unix epoch of a `datetime-local` value (`2026-12-31T18:00`), read
/// as UTC.
pub fn utc_ms(text: &str) -> Option<u64> {
    let (date, time) = text.trim().split_once('T')?;
    let mut date_parts = date.splitn(3, '-');
    let year: i64 = date_parts.next()?.parse().ok()?;
    let month: i64 = date_parts.next()?.parse().ok()?;
    let day: i64 = date_parts.next()?.parse().ok()?;
    let mut time_parts = time.splitn(3, ':');
    let hour: i64 = time_parts.next()?.parse().ok()?;
    let minute: i64 = time_parts.next()?.parse().ok()?;
    let second: i64 = match time_parts.next() {
        Some(s) => s.parse().ok()?,
        None => 0,
    };
    if !(1..=12).contains(&month)
        || !(1..=31).contains(&day)
        || hour > 23
        || minute > 59
        || second > 59
        || year < 1970
    {
        return None;
    }
    let days = caravan_core::calendar::days_from_civil(year, month as u64, day as u64);
    u64::try_from(((days * 24 + hour) * 60 + minute) * 60 + second)
        .ok()
        .map(|s| s * 1000)
}

impl ProjectForm {
    /// The schema of the chosen task type.
    fn schema(&self, problems: &mut Problems) -> Option<LabelSchema> {
        Some(match self.kind.as_str() {
            "single_choice" => LabelSchema::SingleChoice {
                options: lines(&self.options),
            },
            "multiple_choice" => LabelSchema::MultipleChoice {
                options: lines(&self.options),
                min_selected: problems.number(
                    "min_selected",
                    "Fewest options picked",
                    &self.min_selected,
                )?,
                max_selected: problems.number(
                    "max_selected",
                    "Most options picked",
                    &self.max_selected,
                )?,
            },
            "free_text" => LabelSchema::FreeText {
                min_chars: problems.number("min_chars", "Shortest text", &self.min_chars)?,
                max_chars: problems.number("max_chars", "Longest text", &self.max_chars)?,
            },
            "rating" => LabelSchema::Rating {
                min: problems.number("rating_min", "Lowest rating", &self.rating_min)?,
                max: problems.number("rating_max", "Highest rating", &self.rating_max)?,
            },
            "pairwise" => LabelSchema::Pairwise {
                allow_tie: self.allow_tie.is_some(),
            },
            "spans" => LabelSchema::Spans {
                labels: lines(&self.span_labels),
                text_field: self.text_field.trim().to_owned(),
            },
            other => {
                problems.add(
                    "kind-single_choice",
                    format!(
                        "Task type {other:?} is not one this form offers: pick one of the list."
                    ),
                );
                return None;
            }
        })
    }

    /// The field a schema's own complaint is about, by the task type's inputs.
    fn schema_field(&self) -> &'static str {
        match self.kind.as_str() {
            "free_text" => "min_chars",
            "rating" => "rating_min",
            "spans" => "span_labels",
            "pairwise" => "kind-pairwise",
            _ => "options",
        }
    }

    /// The field a spec's refusal is about.
    fn field_of(&self, why: &SpecError) -> &'static str {
        match why {
            SpecError::Title => "title",
            SpecError::Instructions => "instructions",
            SpecError::Schema(_) => self.schema_field(),
            SpecError::Overlap { .. } => "overlap_min",
            SpecError::Bounty => "bounty",
            SpecError::Exam => "exam_questions",
            SpecError::Limits => "daily_cap",
        }
    }

    /// The project this form describes, paid in one of `tokens`, or every problem with it.
    pub fn spec(
        &self,
        tokens: &BTreeMap<Address, Token>,
        now_ms: u64,
    ) -> Result<ProjectSpec, Vec<FieldProblem>> {
        let mut problems = Problems(Vec::new());
        let schema = self.schema(&mut problems);
        if let Some(Err(why)) = schema.as_ref().map(LabelSchema::validate_schema) {
            problems.add(self.schema_field(), format!("{why}."));
        }
        let token = self
            .token
            .parse::<Address>()
            .ok()
            .and_then(|address| tokens.get(&address));
        if token.is_none() {
            problems.add(
                "token",
                "Pick the token the project pays in from the list: only tokens this node knows can be escrowed.",
            );
        }
        let amount = |problems: &mut Problems, field: &'static str, label: &str, text: &str| {
            let token = token?;
            match token.parse_amount(text.trim()) {
                Ok(amount) if amount > 0 => Some(amount),
                Ok(_) => {
                    problems.add(field, format!("{label} must be more than 0."));
                    None
                }
                Err(why) => {
                    problems.add(field, format!("{label}, in whole tokens: {why}."));
                    None
                }
            }
        };
        let bounty = amount(
            &mut problems,
            "bounty",
            "The bounty per accepted answer",
            &self.bounty,
        );
        let budget = amount(&mut problems, "budget", "The budget", &self.budget);
        if let (Some(bounty), Some(budget)) = (bounty, budget)
            && bounty > budget
        {
            problems.add("budget", "The budget must cover at least one bounty.");
        }
        let overlap_min = problems.number("overlap_min", "Answers per item", &self.overlap_min);
        let overlap_max =
            problems.number("overlap_max", "Most answers per item", &self.overlap_max);
        let confidence = problems.percent("confidence", "Confidence to stop at", &self.confidence);
        let overlap = match (overlap_min, overlap_max, confidence) {
            (Some(min), Some(max), Some(confidence)) => {
                let overlap = Overlap {
                    min,
                    max,
                    confidence: f64::from(confidence.parts()) / 1e6,
                };
                if min == 0 || min > max || max > caravan_tasks::project::MAX_OVERLAP {
                    problems.add(
                        "overlap_min",
                        format!(
                            "Answers per item must be at least 1 and at most the most answers per item, which is at most {}.",
                            caravan_tasks::project::MAX_OVERLAP
                        ),
                    );
                }
                if confidence.parts() == 0 {
                    problems.add("confidence", "Confidence to stop at must be more than 0%.");
                }
                Some(overlap)
            }
            _ => None,
        };
        let gold_rate = problems.percent("gold_rate", "Check questions", &self.gold_rate);
        let exam_questions: Option<u32> =
            problems.number("exam_questions", "Exam questions", &self.exam_questions);
        let pass_mark = problems.percent("pass_mark", "Pass mark", &self.pass_mark);
        let skill_bar = problems.percent("skill_bar", "Skill bar", &self.skill_bar);
        let gold_grace = problems.number(
            "gold_grace",
            "Check answers before the bar applies",
            &self.gold_grace,
        );
        let min_seconds = problems.number("min_seconds", "Least time per item", &self.min_seconds);
        let daily_cap: Option<u32> =
            problems.number("daily_cap", "Answers per day", &self.daily_cap);
        let lease_minutes: Option<u32> =
            problems.number("lease_minutes", "Time to hold an item", &self.lease_minutes);
        if daily_cap == Some(0) {
            problems.add("daily_cap", "Answers per day must be at least 1.");
        }
        if lease_minutes == Some(0) {
            problems.add(
                "lease_minutes",
                "Time to hold an item must be at least 1 minute.",
            );
        }
        let deadline_ms = if self.deadline.trim().is_empty() {
            Some(u64::MAX)
        } else {
            match utc_ms(&self.deadline) {
                Some(ms) if ms > now_ms => Some(ms),
                Some(_) => {
                    problems.add(
                        "deadline",
                        "The deadline has passed: give a later one, or none.",
                    );
                    None
                }
                None => {
                    problems.add(
                        "deadline",
                        format!(
                            "{:?} is not a date and time such as 2026-12-31T18:00.",
                            self.deadline
                        ),
                    );
                    None
                }
            }
        };
        let method = Method::from_code(&self.method);
        if method.is_none() {
            problems.add("method", "Pick a truth-inference method from the list.");
        }
        let order = match self.order.as_str() {
            "import_order" => Some(QueueOrder::ImportOrder),
            "model_uncertainty" => Some(QueueOrder::ModelUncertainty),
            _ => {
                problems.add(
                    "order",
                    "Pick the order items are handed out in from the list.",
                );
                None
            }
        };
        if self.title.trim().is_empty() {
            problems.add(
                "title",
                "Give the project a title: contributors pick work by it.",
            );
        }
        let spec = (|| {
            Some(ProjectSpec {
                title: self.title.trim().to_owned(),
                instructions: self.instructions.trim().to_owned(),
                schema: schema?,
                overlap: overlap?,
                token: token?.address,
                bounty: bounty?,
                budget: budget?,
                gold_rate: gold_rate?,
                exam: match exam_questions? {
                    0 => None,
                    questions => Some(Exam {
                        questions,
                        pass_mark: pass_mark?,
                    }),
                },
                skill_bar: skill_bar?,
                gold_grace: gold_grace?,
                min_seconds_per_item: min_seconds?,
                daily_cap: daily_cap?,
                deadline_ms: deadline_ms?,
                lease_seconds: lease_minutes?.checked_mul(60)?,
                order: order?,
                method: method?,
            })
        })();
        match spec {
            Some(spec) if problems.0.is_empty() => match spec.validate() {
                Ok(()) => Ok(spec),
                Err(why) => Err(vec![FieldProblem {
                    field: self.field_of(&why),
                    message: format!("{why}."),
                }]),
            },
            _ => Err(problems.0),
        }
    }
}

/// A token the requester may pay in, with what they can escrow in it now.
pub struct TokenRow {
    pub address: String,
    pub symbol: String,
    pub available: String,
}

#[derive(Template)]
#[template(path = "new_project.html")]
struct NewProjectPage {
    chrome: Chrome,
    form: ProjectForm,
    problems: Vec<FieldProblem>,
    /// The budget was more than the balance: the page links to the deposit.
    short: bool,
    tokens: Vec<TokenRow>,
    kinds: Vec<(&'static str, &'static str)>,
    methods: Vec<(&'static str, &'static str)>,
}

impl NewProjectPage {
    fn problem(&self, field: &str) -> Option<&str> {
        self.problems
            .iter()
            .find(|p| p.field == field)
            .map(|p| p.message.as_str())
    }
}

fn page(
    node: &Node,
    viewer: &Viewer,
    mut form: ProjectForm,
    problems: Vec<FieldProblem>,
    short: bool,
) -> NewProjectPage {
    let tokens: Vec<TokenRow> = node
        .gateway()
        .balances(&viewer.account)
        .into_iter()
        .map(|balance| TokenRow {
            address: balance.token.address.to_checksum(),
            symbol: balance.token.symbol.clone(),
            available: balance.token.format(balance.available),
        })
        .collect();
    if form.token.is_empty()
        && let Some(first) = tokens.first()
    {
        form.token = first.address.clone();
    }
    NewProjectPage {
        chrome: Chrome::of(viewer, "requests"),
        form,
        problems,
        short,
        tokens,
        kinds: KINDS.to_vec(),
        methods: METHODS.to_vec(),
    }
}

/// `GET /requests/new`.
pub async fn new_project(State(node): State<Arc<Node>>, viewer: Viewer) -> Response {
    render(&page(
        &node,
        &viewer,
        ProjectForm::default(),
        Vec::new(),
        false,
    ))
}

/// `POST /requests/new`: posts the project and escrows its budget, then opens its page; a
/// refused form comes back, as typed, with what to change.
pub async fn create_project(
    State(node): State<Arc<Node>>,
    viewer: Viewer,
    Form(form): Form<ProjectForm>,
) -> Result<Response, PageError> {
    viewer.check_csrf(Some(&form.csrf))?;
    let tokens = node.journal().read(|j| j.economy().tokens().clone());
    let spec = match form.spec(&tokens, caravan_store::now_ms()) {
        Ok(spec) => spec,
        Err(problems) => {
            let page = page(&node, &viewer, form, problems, false);
            return Ok((StatusCode::UNPROCESSABLE_ENTITY, render(&page)).into_response());
        }
    };
    let desk = Arc::clone(node.desk());
    let account = viewer.account;
    let created =
        blocking(move || Ok::<_, crate::error::ApiError>(desk.create_project(account, spec)))
            .await?;
    match created {
        Ok(id) => Ok(Redirect::to(&format!("/requests/{id}?created=1")).into_response()),
        Err(error) => {
            let short = matches!(error, DeskError::InsufficientBalance { .. });
            let (status, field) = match &error {
                DeskError::InsufficientBalance { .. } => (StatusCode::PAYMENT_REQUIRED, "budget"),
                DeskError::Spec(why) => (StatusCode::UNPROCESSABLE_ENTITY, form.field_of(why)),
                DeskError::UnknownToken(_) => (StatusCode::UNPROCESSABLE_ENTITY, "token"),
                DeskError::ProjectExists(_) => (StatusCode::UNPROCESSABLE_ENTITY, "title"),
                _ => return Err(crate::error::ApiError::from(error).into()),
            };
            let problems = vec![FieldProblem {
                field,
                message: format!("{error}."),
            }];
            let page = page(&node, &viewer, form, problems, short);
            Ok((status, render(&page)).into_response())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn usdc() -> BTreeMap<Address, Token> {
        let token = Token {
            address: Address([7; 20]),
            symbol: "USDC".into(),
            decimals: 6,
        };
        BTreeMap::from([(token.address, token)])
    }

    fn filled(kind: &str) -> ProjectForm {
        ProjectForm {
            title: "Reviews".into(),
            kind: kind.into(),
            options: "Positive\n Negative \n\n".into(),
            span_labels: "PER\nLOC\n".into(),
            token: Address([7; 20]).to_checksum(),
            bounty: "0.01".into(),
            budget: "25".into(),
            ..ProjectForm::default()
        }
    }

    #[test]
    fn every_task_type_becomes_its_schema_with_the_checks_and_the_budget_in_base_units() {
        let now = 1_800_000_000_000;
        let spec = filled("single_choice").spec(&usdc(), now).unwrap();
        assert_eq!(
            spec.schema,
            LabelSchema::SingleChoice {
                options: vec!["Positive".into(), "Negative".into()]
            }
        );
        assert_eq!((spec.bounty, spec.budget), (10_000, 25_000_000));
        assert_eq!((spec.overlap.min, spec.overlap.max), (3, 5));
        assert!((spec.overlap.confidence - 0.9).abs() < 1e-12);
        assert_eq!(spec.gold_rate, Ppm::from_percent_text("10%").unwrap());
        assert_eq!((spec.exam, spec.lease_seconds), (None, 600));
        assert_eq!(spec.deadline_ms, u64::MAX, "no deadline given");
        assert_eq!(spec.method, Method::DawidSkene);

        let mut form = filled("multiple_choice");
        form.exam_questions = "4".into();
        form.deadline = "2027-01-31T18:30".into();
        let spec = form.spec(&usdc(), now).unwrap();
        assert_eq!(spec.exam.map(|e| e.questions), Some(4));
        assert_eq!(spec.deadline_ms, 1_801_420_200_000, "2027-01-31 18:30 UTC");
        assert!(matches!(
            spec.schema,
            LabelSchema::MultipleChoice {
                min_selected: 1,
                max_selected: 2,
                ..
            }
        ));
        for (kind, expected) in [
            ("rating", "rating"),
            ("pairwise", "pairwise"),
            ("free_text", "free_text"),
            ("spans", "spans"),
        ] {
            let spec = filled(kind).spec(&usdc(), now).unwrap();
            assert_eq!(spec.schema.kind(), expected);
        }
    }

    #[test]
    fn every_problem_is_listed_against_its_field() {
        let form = ProjectForm {
            title: " ".into(),
            kind: "single_choice".into(),
            options: "Only one".into(),
            token: Address([7; 20]).to_checksum(),
            bounty: "0.0000001".into(),
            budget: "ten".into(),
            daily_cap: "0".into(),
            deadline: "2020-01-01T00:00".into(),
            ..ProjectForm::default()
        };
        let problems = form.spec(&usdc(), 1_800_000_000_000).unwrap_err();
        let fields: Vec<&str> = problems.iter().map(|p| p.field).collect();
        assert_eq!(
            fields,
            [
                "options",
                "bounty",
                "budget",
                "daily_cap",
                "deadline",
                "title"
            ]
        );
        assert!(
            problems[0].message.contains("between 2 and"),
            "{problems:?}"
        );
        assert!(
            problems[1]
                .message
                .contains("in whole tokens: amount `0.0000001`"),
            "{problems:?}"
        );
    }

    #[test]
    fn a_form_time_is_read_as_utc() {
        assert_eq!(utc_ms("1970-01-01T00:00"), Some(0));
        assert_eq!(utc_ms("2000-03-01T00:00:01"), Some(951_868_801_000));
        assert_eq!(utc_ms("2026-13-01T00:00"), None);
        assert_eq!(utc_ms("tomorrow"), None);
    }
}
