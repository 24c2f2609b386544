//! The labeling screen: one project's rules in view, and its items one after another without a
//! page load. The page's script asks for the next item (an HTML fragment drawn here for the
//! project's task type), sends the answer as JSON, and keeps what was typed when a submission
//! fails; every change carries the session's CSRF token.

use std::sync::Arc;

use askama::Template;
use axum::Json;
use axum::extract::{FromRequestParts, Path, State};
use axum::http::StatusCode;
use axum::http::request::Parts;
use axum::response::{IntoResponse, Response};
use caravan_core::Address;
use caravan_node::Node;
use caravan_node::desk::{DeskError, ListedProject};
use caravan_tasks::board::{AssignError, Assignment, Effect};
use caravan_tasks::item::ItemId;
use caravan_tasks::project::{ProjectId, ProjectSpec};
use caravan_tasks::schema::{Answer, LabelSchema};
use serde::Deserialize;
use serde_json::{Value, json};

use super::board::seconds_in_words;
use super::item::{ItemView, item_view};
use super::page::{Chrome, PageError, Viewer, render};
use crate::error::{ApiError, JsonBody, blocking};
use crate::tasks::project_id;

#[derive(Template)]
#[template(path = "label.html")]
struct LabelPage {
    chrome: Chrome,
    project: String,
    title: String,
    instructions: String,
    task_type: String,
    bounty: String,
    rules: Vec<String>,
    exam: Option<String>,
    paused: Option<String>,
    keys: Vec<(&'static str, &'static str)>,
    progress: Progress,
}

/// Where the viewer stands on the project, redrawn after every answer: the day's answers
/// against the cap as a bar, the items left, and their own counts and pay.
pub struct Progress {
    pub used_today: u32,
    pub daily_cap: u32,
    pub items_left: u64,
    pub submitted: u32,
    pub accepted: u32,
    pub earned: String,
}

impl Progress {
    fn of(listed: &ListedProject) -> Progress {
        let listing = &listed.listing;
        let mine = listing.mine.as_ref();
        let accepted = mine.map_or(0, |m| m.accepted);
        Progress {
            used_today: listing.daily_cap - mine.map_or(listing.daily_cap, |m| m.daily_cap_left),
            daily_cap: listing.daily_cap,
            items_left: listing.items_left,
            submitted: mine.map_or(0, |m| m.submitted),
            accepted,
            earned: listed.token.format(u128::from(accepted) * listing.bounty),
        }
    }
}

#[derive(Template)]
#[template(path = "progress.html")]
struct ProgressFragment {
    progress: Progress,
}

/// `GET /projects/{project}/label/progress`: the progress strip, redrawn.
pub async fn progress(
    State(node): State<Arc<Node>>,
    viewer: Viewer,
    Path(project): Path<String>,
) -> Result<Response, PageError> {
    let id = project_id(&project)?;
    let desk = Arc::clone(node.desk());
    let account = viewer.account;
    let listed = blocking(move || desk.listed(&id, &account)).await?;
    Ok(render(&ProgressFragment {
        progress: Progress::of(&listed),
    }))
}

/// The keys of a task type's screen, for the `?` help.
fn keys_of(schema: &LabelSchema) -> Vec<(&'static str, &'static str)> {
    let mut keys = match schema {
        LabelSchema::SingleChoice { .. } => vec![("the digit on an option", "pick it")],
        LabelSchema::MultipleChoice { .. } => vec![("the digit on an option", "tick or untick it")],
        LabelSchema::FreeText { .. } => vec![("Ctrl + Enter", "submit while typing")],
        LabelSchema::Rating { .. } => vec![
            ("the digit on a value", "pick it"),
            ("← →", "one lower, one higher"),
        ],
        LabelSchema::Pairwise { .. } => vec![
            ("1 or ←", "A is better"),
            ("2 or →", "B is better"),
            ("3", "a tie, where allowed"),
        ],
        LabelSchema::Spans { .. } => vec![
            ("← →", "move over the words"),
            ("Shift + ← →", "stretch the selection"),
            ("the digit on a label", "mark the selection with it"),
            ("Backspace", "remove the last mark"),
        ],
    };
    keys.extend([
        ("Enter", "submit"),
        ("S", "skip this item"),
        (
            "U",
            "take back your latest answer, while it is unsettled and its time lasts",
        ),
        ("?", "show or hide these keys"),
    ]);
    keys
}

fn rules_of(spec: &ProjectSpec, listed: &ListedProject) -> Vec<String> {
    let mut rules = vec![
        format!(
            "Take at least {} per item: the submit button counts down until an answer is accepted.",
            seconds_in_words(spec.min_seconds_per_item)
        ),
        format!(
            "Each item is yours for {} once handed out; after that it goes back to the pool.",
            seconds_in_words(spec.lease_seconds)
        ),
    ];
    let left_today = listed
        .listing
        .mine
        .as_ref()
        .map_or(spec.daily_cap, |mine| mine.daily_cap_left);
    rules.push(format!(
        "At most {} answers a day (UTC): {left_today} left today.",
        spec.daily_cap
    ));
    if spec.gold_rate.parts() > 0 {
        rules.push(format!(
            "Some items are check questions with a known answer; below {} right on them, you are paused here and your unpaid answers stop counting.",
            spec.skill_bar
        ));
    }
    rules
}

/// `GET /projects/{project}/label`: the screen, its rules and keys; the first item follows.
pub async fn label_page(
    State(node): State<Arc<Node>>,
    viewer: Viewer,
    Path(project): Path<String>,
) -> Result<Response, PageError> {
    let id = project_id(&project)?;
    let desk = node.desk();
    let spec = desk.spec(&id).map_err(ApiError::from)?;
    let listed = desk.listed(&id, &viewer.account).map_err(ApiError::from)?;
    let paused = listed
        .listing
        .mine
        .as_ref()
        .and_then(|mine| mine.paused.clone());
    Ok(render(&LabelPage {
        chrome: Chrome::of(&viewer, "tasks"),
        project: id.to_string(),
        title: spec.title.clone(),
        instructions: spec.instructions.clone(),
        task_type: spec.schema.kind().replace('_', " "),
        bounty: listed.token.format(spec.bounty),
        rules: rules_of(&spec, &listed),
        progress: Progress::of(&listed),
        exam: spec.exam.map(|exam| {
            format!(
                "Before real items you answer {} exam questions with known answers; you see right or wrong after each, and you go on at {} right.",
                exam.questions, exam.pass_mark
            )
        }),
        paused,
        keys: keys_of(&spec.schema),
    }))
}

#[derive(Template)]
#[template(path = "item.html")]
pub(super) struct ItemFragment {
    pub(super) view: ItemView,
}

#[derive(Template)]
#[template(path = "no_item.html")]
pub(super) struct NoItemFragment {
    pub(super) heading: &'static str,
    pub(super) message: String,
    pub(super) paused: bool,
}

/// A request of the screen's own script: the signed-in viewer, checked to carry their session's
/// CSRF token, and the project in the path.
pub struct ScreenRequest {
    pub(super) account: Address,
    pub(super) project: ProjectId,
}

impl FromRequestParts<Arc<Node>> for ScreenRequest {
    type Rejection = Response;

    async fn from_request_parts(
        parts: &mut Parts,
        node: &Arc<Node>,
    ) -> Result<ScreenRequest, Response> {
        let viewer = Viewer::from_request_parts(parts, node)
            .await
            .map_err(IntoResponse::into_response)?;
        viewer
            .check_csrf_header(&parts.headers)
            .map_err(IntoResponse::into_response)?;
        let Path(project) = Path::<String>::from_request_parts(parts, node)
            .await
            .map_err(IntoResponse::into_response)?;
        let project = project_id(&project).map_err(IntoResponse::into_response)?;
        Ok(ScreenRequest {
            account: viewer.account,
            project,
        })
    }
}

/// `POST /projects/{project}/label/next`: the viewer's next item (or the one they hold) as the
/// fragment the screen shows, or why there is none.
pub async fn next_item(
    State(node): State<Arc<Node>>,
    ScreenRequest {
        account,
        project: id,
    }: ScreenRequest,
) -> Result<Response, Response> {
    let desk = Arc::clone(node.desk());
    let answer = tokio::task::spawn_blocking(move || {
        let spec = desk.spec(&id)?;
        desk.next_item(&id, account)
            .map(|assignment| (spec, assignment))
    })
    .await
    .map_err(|e| {
        ApiError::internal(format!("the request failed inside the node: {e}")).into_response()
    })?;
    match answer {
        Ok((spec, assignment)) => Ok(item_fragment(&spec, &assignment)),
        Err(DeskError::Assign(refusal)) => Ok(no_item(refusal)),
        Err(error) => Err(ApiError::from(error).into_response()),
    }
}

fn item_fragment(spec: &ProjectSpec, assignment: &Assignment) -> Response {
    render(&ItemFragment {
        view: item_view(spec, assignment, caravan_store::now_ms()),
    })
}

fn no_item(refusal: AssignError) -> Response {
    let (heading, paused) = match &refusal {
        AssignError::Paused(_) => ("You are paused on this project", true),
        AssignError::DailyCap { .. } => ("That is all for today", false),
        AssignError::NothingLeft => ("Nothing to do here right now", false),
        AssignError::Closed | AssignError::DeadlinePassed | AssignError::BudgetCommitted => {
            ("This project hands out no more work", false)
        }
        AssignError::NotEnoughGold { .. } => ("This project is not ready yet", false),
    };
    let message = match &refusal {
        AssignError::Paused(reason) => format!(
            "{reason}. A pause here is final: your answers on this project no longer count, and other projects are not affected."
        ),
        AssignError::DailyCap { cap, resets_at_ms } => format!(
            "You reached this project's cap of {cap} answers a day. It starts again at {} (00:00 UTC).",
            caravan_node::sessions::siwe::Timestamp::from_ms(*resets_at_ms).text
        ),
        other => format!("{}.", capitalised(&other.to_string())),
    };
    render(&NoItemFragment {
        heading,
        message,
        paused,
    })
}

fn capitalised(text: &str) -> String {
    let mut chars = text.chars();
    chars.next().map_or_else(String::new, |first| {
        first.to_uppercase().chain(chars).collect()
    })
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Submission {
    item: ItemId,
    answer: Answer,
}

/// What a submission led to, in words for the person who made it: their own pay, exam grades
/// and pause; others' pay the same judgment settled is not theirs to see.
fn outcome(account: Address, effects: &[Effect], spec_token: &caravan_core::Token) -> Value {
    let mut messages = Vec::new();
    let mut paused = None;
    for effect in effects {
        match effect {
            Effect::Paid {
                contributor,
                amount,
                ..
            } if *contributor == account => {
                messages.push(format!("Accepted: {} earned.", spec_token.format(*amount)));
            }
            Effect::ExamAnswered {
                contributor,
                right,
                number,
                of,
            } if *contributor == account => messages.push(format!(
                "Exam question {number} of {of}: {}.",
                if *right { "right" } else { "wrong" }
            )),
            Effect::ExamPassed { contributor } if *contributor == account => {
                messages.push("You passed the exam: real items follow.".to_owned());
            }
            Effect::Paused {
                contributor,
                reason,
            } if *contributor == account => paused = Some(reason.to_string()),
            _ => {}
        }
    }
    if messages.is_empty() {
        messages.push(
            "Saved. It is paid once the item's label is settled by the answers of others or a review."
                .to_owned(),
        );
    }
    json!({ "messages": messages, "paused": paused })
}

/// `POST /projects/{project}/label/answer`: records the viewer's answer; says what it led to.
pub async fn submit_answer(
    State(node): State<Arc<Node>>,
    ScreenRequest {
        account,
        project: id,
    }: ScreenRequest,
    JsonBody(submission): JsonBody<Submission>,
) -> Result<Json<Value>, Response> {
    let desk = Arc::clone(node.desk());
    let (receipt, listed) = blocking(move || {
        let receipt = desk.submit(&id, account, submission.item, submission.answer)?;
        Ok::<_, DeskError>((receipt, desk.listed(&id, &account)?))
    })
    .await
    .map_err(IntoResponse::into_response)?;
    Ok(Json(outcome(account, &receipt.effects, &listed.token)))
}

/// `POST /projects/{project}/label/undo`: takes back the viewer's latest submission and shows
/// its item again with what they had answered.
pub async fn undo_last(
    State(node): State<Arc<Node>>,
    ScreenRequest {
        account,
        project: id,
    }: ScreenRequest,
) -> Result<Response, Response> {
    let desk = Arc::clone(node.desk());
    let (spec, withdrawn) = blocking(move || {
        let withdrawn = desk.undo(&id, account)?;
        Ok::<_, DeskError>((desk.spec(&id)?, withdrawn))
    })
    .await
    .map_err(IntoResponse::into_response)?;
    let mut view = item_view(&spec, &withdrawn.assignment, caravan_store::now_ms());
    view.taken_back = serde_json::to_string(&withdrawn.answer).expect("answers serialise");
    Ok(render(&ItemFragment { view }))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Skip {
    item: ItemId,
}

/// `POST /projects/{project}/label/skip`: gives the held item back.
pub async fn skip_item(
    State(node): State<Arc<Node>>,
    ScreenRequest {
        account,
        project: id,
    }: ScreenRequest,
    JsonBody(skip): JsonBody<Skip>,
) -> Result<StatusCode, Response> {
    let desk = Arc::clone(node.desk());
    blocking(move || desk.skip(&id, account, skip.item))
        .await
        .map_err(IntoResponse::into_response)?;
    Ok(StatusCode::NO_CONTENT)
}
