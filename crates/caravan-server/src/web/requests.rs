//! The requester's pages: their projects, and each one watched live — progress, money,
//! agreement, every contributor's record in pages — with publishing and the exports.

use std::sync::Arc;

use askama::Template;
use axum::Form;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{Redirect, Response};
use caravan_core::{Licence, Ppm};
use caravan_node::Node;
use caravan_node::desk::{AGREEMENT_FRESH_MS, RequestView, RequestedProject};
use serde::Deserialize;

use super::earnings::{token_of, utc_minute};
use super::page::{Chrome, PageError, Viewer, render, url_encode};
use crate::error::blocking;
use crate::tasks::project_id;

/// A moment to the second: `2026-12-05 14:03:07 UTC`.
fn utc_second(ms: u64) -> String {
    let minute = utc_minute(ms);
    let seconds = (ms / 1000) % 60;
    minute.replacen(" UTC", &format!(":{seconds:02} UTC"), 1)
}

/// Contributors per page of a project's table.
pub const CONTRIBUTORS_PER_PAGE: usize = 50;

#[derive(Template)]
#[template(path = "requests.html")]
struct RequestsPage {
    chrome: Chrome,
    projects: Vec<RequestedProject>,
}

/// `GET /requests`: the viewer's own projects.
pub async fn requests(
    State(node): State<Arc<Node>>,
    viewer: Viewer,
) -> Result<Response, PageError> {
    let desk = Arc::clone(node.desk());
    let account = viewer.account;
    let projects =
        blocking(move || Ok::<_, caravan_node::desk::DeskError>(desk.requested_by(&account)))
            .await?;
    Ok(render(&RequestsPage {
        chrome: Chrome::of(&viewer, "requests"),
        projects,
    }))
}

pub struct ContributorRow {
    pub account: String,
    pub submitted: u32,
    pub accepted: u32,
    pub rejected: u32,
    pub gold: String,
    pub paused: String,
}

#[derive(Template)]
#[template(path = "request.html")]
struct RequestPage {
    chrome: Chrome,
    project: String,
    title: String,
    task_type: String,
    notice: Option<String>,
    progress: Vec<(&'static str, String)>,
    agreement: Vec<(String, String)>,
    agreement_note: String,
    contributors: Vec<ContributorRow>,
    contributor_count: usize,
    page: usize,
    previous: Option<usize>,
    next: Option<usize>,
    publications: Vec<String>,
    closed: bool,
}

#[derive(Deserialize)]
pub struct RequestQuery {
    #[serde(default)]
    page: Option<usize>,
    #[serde(default)]
    published: Option<String>,
}

fn percent(part: u64, whole: u64) -> String {
    if whole == 0 {
        "—".to_owned()
    } else {
        format!("{:.1}%", 100.0 * part as f64 / whole as f64)
    }
}

fn request_page(
    node: &Node,
    view: &RequestView,
    viewer: &Viewer,
    project: String,
    page: usize,
    notice: Option<String>,
) -> RequestPage {
    let tokens = node.journal().read(|j| j.economy().tokens().clone());
    let token = token_of(&tokens, &view.spec.token);
    let status = &view.status;
    let mut agreement = Vec::new();
    if let Some(kappa) = status.fleiss_kappa {
        agreement.push(("Fleiss' kappa".to_owned(), format!("{kappa:.3}")));
    }
    if let Some(alpha) = status.krippendorff_alpha {
        agreement.push(("Krippendorff's alpha".to_owned(), format!("{alpha:.3}")));
    }
    for (model, (agreed, compared)) in &status.model_agreement {
        agreement.push((
            format!("Model {model} agrees with the label"),
            format!("{agreed} of {compared} ({})", percent(*agreed, *compared)),
        ));
    }
    let shown = (page + 1) * CONTRIBUTORS_PER_PAGE;
    RequestPage {
        chrome: Chrome::of(viewer, "requests"),
        project,
        title: view.spec.title.clone(),
        task_type: view.spec.schema.kind().replace('_', " "),
        notice,
        progress: vec![
            (
                "Items resolved",
                format!(
                    "{} of {} ({})",
                    status.resolved,
                    status.items,
                    percent(status.resolved, status.items)
                ),
            ),
            ("Judgments", status.judgments.to_string()),
            ("Check questions", status.gold_items.to_string()),
            (
                "Contributors",
                format!("{} ({} paused)", status.contributors, status.paused),
            ),
            ("Awaiting review", status.awaiting_review.to_string()),
            (
                "Budget",
                format!(
                    "{} paid, {} committed, of {}",
                    token.format(status.paid),
                    token.format(view.committed.saturating_sub(status.paid)),
                    token.format(status.budget)
                ),
            ),
        ],
        agreement,
        agreement_note: if view.agreement_exact {
            format!(
                "Measured at {}, and still exact.",
                utc_second(view.agreement_measured_ms)
            )
        } else {
            format!(
                "Measured at {}; answers came in since. It is measured again at most every {} s.",
                utc_second(view.agreement_measured_ms),
                AGREEMENT_FRESH_MS / 1000
            )
        },
        contributors: view
            .contributors
            .iter()
            .map(|c| ContributorRow {
                account: c.account.to_checksum(),
                submitted: c.submitted,
                accepted: c.accepted,
                rejected: c.rejected,
                gold: if c.gold_answered == 0 {
                    "—".to_owned()
                } else {
                    format!(
                        "{} of {} ({})",
                        c.gold_right,
                        c.gold_answered,
                        percent(u64::from(c.gold_right), u64::from(c.gold_answered))
                    )
                },
                paused: c.paused.clone().unwrap_or_default(),
            })
            .collect(),
        contributor_count: view.contributor_count,
        page,
        previous: page.checked_sub(1),
        next: (shown < view.contributor_count).then_some(page + 1),
        publications: view.publications.iter().map(ToString::to_string).collect(),
        closed: view.closed,
    }
}

/// `GET /requests/{project}`.
pub async fn request(
    State(node): State<Arc<Node>>,
    viewer: Viewer,
    Path(project): Path<String>,
    Query(query): Query<RequestQuery>,
) -> Result<Response, PageError> {
    let id = project_id(&project)?;
    let page = query.page.unwrap_or(0);
    let desk = Arc::clone(node.desk());
    let account = viewer.account;
    let view = blocking(move || {
        desk.request_view(
            &id,
            account,
            page * CONTRIBUTORS_PER_PAGE,
            CONTRIBUTORS_PER_PAGE,
        )
    })
    .await?;
    let notice = query.published.map(|asset| {
        format!("Published as dataset {asset}: its contributors share every royalty it earns.")
    });
    Ok(render(&request_page(
        &node,
        &view,
        &viewer,
        id.to_string(),
        page,
        notice,
    )))
}

#[derive(Deserialize)]
pub struct PublishForm {
    #[serde(default)]
    csrf: String,
    name: String,
    licence: String,
    curator_share: String,
}

/// `POST /requests/{project}/publish`: the resolved work becomes a dataset asset.
pub async fn publish(
    State(node): State<Arc<Node>>,
    viewer: Viewer,
    Path(project): Path<String>,
    Form(form): Form<PublishForm>,
) -> Result<Redirect, PageError> {
    viewer.check_csrf(Some(&form.csrf))?;
    let id = project_id(&project)?;
    let licence = match form.licence.as_str() {
        "open_use" => Licence::OpenUse,
        "non_commercial" => Licence::NonCommercial,
        other => {
            return Err(PageError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                format!("{other:?} is not a licence this form offers: open use or non-commercial"),
            ));
        }
    };
    let share = Ppm::from_percent_text(&form.curator_share).map_err(|why| {
        PageError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            format!("The curator's share: {why}. Write a percentage such as 10%."),
        )
    })?;
    let name = form.name.trim().to_owned();
    if name.is_empty() {
        return Err(PageError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "Give the dataset a name: it is how models name what they were trained on.",
        ));
    }
    let desk = Arc::clone(node.desk());
    let account = viewer.account;
    let (asset, _) = blocking(move || desk.publish(&id, account, name, licence, share)).await?;
    Ok(Redirect::to(&format!(
        "/requests/{project}?published={}",
        url_encode(&asset.to_string())
    )))
}
