//! The review queue: a project's reviewer sees each written or marked answer waiting for
//! review on the item as its labeller saw it, with the answer in the form, and accepts it,
//! accepts it with their fix, or rejects it (unpaid; the item goes back to the pool). The
//! labeling screen's script drives it, in its review mode.

use std::sync::Arc;

use askama::Template;
use axum::Json;
use axum::extract::{Path, State};
use axum::response::{IntoResponse, Response};
use caravan_node::Node;
use caravan_node::desk::DeskError;
use caravan_tasks::board::{Assignment, Effect, Verdict};
use serde::Deserialize;
use serde_json::{Value, json};

use super::item::item_view;
use super::label::{ItemFragment, NoItemFragment, ScreenRequest};
use super::page::{Chrome, PageError, Viewer, render};
use crate::error::{ApiError, JsonBody, blocking};
use crate::tasks::project_id;

#[derive(Template)]
#[template(path = "review.html")]
struct ReviewPage {
    chrome: Chrome,
    project: String,
    title: String,
    instructions: String,
    task_type: String,
    waiting: u64,
    keys: Vec<(&'static str, &'static str)>,
}

/// The keys of the review screen, for the `?` help.
const REVIEW_KEYS: [(&str, &str); 4] = [
    ("Enter", "accept, with your changes if you made any"),
    ("A", "accept as written"),
    ("R", "reject: unpaid, and the item goes back to the pool"),
    ("?", "show or hide these keys"),
];

/// `GET /projects/{project}/review`: the queue's screen; the first answer follows.
pub async fn review_page(
    State(node): State<Arc<Node>>,
    viewer: Viewer,
    Path(project): Path<String>,
) -> Result<Response, PageError> {
    let id = project_id(&project)?;
    let desk = Arc::clone(node.desk());
    let account = viewer.account;
    let (spec, waiting) = blocking(move || desk.review_queue(&id, account)).await?;
    Ok(render(&ReviewPage {
        chrome: Chrome::of(&viewer, "requests"),
        project: id.to_string(),
        title: spec.title.clone(),
        instructions: spec.instructions.clone(),
        task_type: spec.schema.kind().replace('_', " "),
        waiting,
        keys: REVIEW_KEYS.to_vec(),
    }))
}

/// `POST /projects/{project}/review/next`: the oldest answer waiting that the viewer did not
/// write, drawn as its labeller saw the item, with the answer in the form.
pub async fn next_review(
    State(node): State<Arc<Node>>,
    ScreenRequest {
        account,
        project: id,
    }: ScreenRequest,
) -> Result<Response, Response> {
    let desk = Arc::clone(node.desk());
    let (spec, task) = blocking(move || {
        let spec = desk.spec(&id)?;
        Ok::<_, DeskError>((spec, desk.next_review(&id, account)?))
    })
    .await
    .map_err(IntoResponse::into_response)?;
    let Some(task) = task else {
        return Ok(render(&NoItemFragment {
            heading: "Nothing waits for review",
            message: "Every written and marked answer so far has been reviewed. New ones appear here as contributors send them.".to_owned(),
            paused: false,
        }));
    };
    let now_ms = caravan_store::now_ms();
    let shown = Assignment {
        item: task.item,
        data: task.data,
        suggestions: Vec::new(),
        handed_out_ms: now_ms,
        lease_until_ms: now_ms,
        exam_question: None,
    };
    let mut view = item_view(&spec, &shown, now_ms);
    view.review = Some(task.judgment);
    view.taken_back = serde_json::to_string(&task.answer).expect("answers serialise");
    Ok(render(&ItemFragment { view }))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Decision {
    judgment: u32,
    verdict: Verdict,
}

/// `POST /projects/{project}/review/verdict`: records the viewer's review; says what it did.
pub async fn decide(
    State(node): State<Arc<Node>>,
    ScreenRequest {
        account,
        project: id,
    }: ScreenRequest,
    JsonBody(decision): JsonBody<Decision>,
) -> Result<Json<Value>, Response> {
    let desk = Arc::clone(node.desk());
    let verdict = decision.verdict.clone();
    let (receipt, token) = blocking(move || {
        let receipt = desk.review(&id, account, decision.judgment, decision.verdict)?;
        let token = desk.listed(&id, &account)?.token;
        Ok::<_, DeskError>((receipt, token))
    })
    .await
    .map_err(|error: ApiError| error.into_response())?;
    let paid: u128 = receipt
        .effects
        .iter()
        .map(|effect| match effect {
            Effect::Paid { amount, .. } => *amount,
            _ => 0,
        })
        .sum();
    let message = match verdict {
        Verdict::Accept => format!("Accepted: {} paid to its labeller.", token.format(paid)),
        Verdict::Fix { .. } => format!(
            "Accepted with your fix, which the dataset uses: {} paid to its labeller.",
            token.format(paid)
        ),
        Verdict::Reject => {
            "Rejected: unpaid, and the item goes back to the pool for another answer.".to_owned()
        }
    };
    Ok(Json(json!({ "messages": [message] })))
}
