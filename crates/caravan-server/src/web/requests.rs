//! The requester's pages: their projects, and each one watched live — progress, money,
//! agreement, every contributor's record in pages (median time per answer included) — with
//! item uploads (a refused file lists every bad record), reviewers, publishing and the exports.

use std::fmt::Write as _;
use std::sync::Arc;

use askama::Template;
use axum::Form;
use axum::extract::{Multipart, Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use caravan_core::{Address, Licence, Ppm};
use caravan_node::Node;
use caravan_node::desk::{DeskError, RequestView, RequestedProject};
use caravan_tasks::import::{ImportFormat, Skipped};
use caravan_tasks::project::ProjectId;
use serde::Deserialize;

use super::chart::Frame;
use super::earnings::token_of;
use super::page::{Chrome, PageError, Viewer, render, short_address, url_encode};
use crate::error::{ApiError, blocking};
use crate::tasks::project_id;

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
    /// The full checksummed address, which the row links to in the explorer.
    pub account: String,
    /// `0x1234…abcd`, shown so the table's figures fit beside it.
    pub short: String,
    pub submitted: u32,
    pub accepted: u32,
    pub rejected: u32,
    pub gold: String,
    pub median_time: String,
    pub paused: String,
}

/// A refused import, as the page lists it: each bad record with its place and field.
pub struct ImportReport {
    pub file: String,
    pub bad_records: usize,
    pub listed: Vec<(String, String, String)>,
    /// Bad records beyond those listed.
    pub unlisted: usize,
}

/// A time spent on an item, truncated to the tenth of a second under a minute and to the second
/// from a minute on: the precision the board keeps answer times with.
fn time_spent(ms: u32) -> String {
    if ms < 60_000 {
        let tenths = ms / 100;
        format!("{}.{} s", tenths / 10, tenths % 10)
    } else {
        super::board::seconds_in_words(ms / 1000)
    }
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
    /// The resolved items' confidence as an SVG bar chart; `None` before any resolved.
    confidence_chart: Option<String>,
    contributors: Vec<ContributorRow>,
    contributor_count: usize,
    page: usize,
    previous: Option<usize>,
    next: Option<usize>,
    publications: Vec<String>,
    closed: bool,
    reviewers: Vec<String>,
    awaiting_review: u64,
    import_report: Option<ImportReport>,
    /// The Label Studio export's tag names unless the requester changes them.
    from_name: String,
    to_name: String,
}

#[derive(Deserialize)]
pub struct RequestQuery {
    #[serde(default)]
    page: Option<usize>,
    #[serde(default)]
    published: Option<String>,
    #[serde(default)]
    created: Option<String>,
    #[serde(default)]
    imported: Option<usize>,
    #[serde(default)]
    present: Option<usize>,
    #[serde(default)]
    prediction_ids: usize,
    #[serde(default)]
    relations: usize,
    #[serde(default)]
    annotations: usize,
    #[serde(default)]
    gold: usize,
    #[serde(default)]
    pre_labels: usize,
    #[serde(default)]
    reviewer: Option<String>,
}

impl RequestQuery {
    /// What the last change did, said once on the page it led back to.
    fn notice(&self) -> Option<String> {
        if let Some(asset) = &self.published {
            return Some(format!(
                "Published as dataset {asset}: its contributors share every royalty it earns."
            ));
        }
        if let Some(added) = self.imported {
            let present = self.present.unwrap_or(0);
            let skipped = Skipped {
                prediction_ids: self.prediction_ids,
                relations: self.relations,
                annotations: self.annotations,
                annotations_as_gold: self.gold,
                annotations_as_pre_labels: self.pre_labels,
            };
            let said = match present {
                0 => format!("Imported {added} items."),
                _ => format!(
                    "Imported {added} items; {present} were already in the project and were left as they were."
                ),
            };
            return Some(
                std::iter::once(said)
                    .chain(skipped.notes())
                    .collect::<Vec<_>>()
                    .join(" "),
            );
        }
        if let Some(reviewer) = &self.reviewer {
            return Some(format!("{reviewer} may now review answers here."));
        }
        self.created.as_ref().map(|_| {
            "Posted, and the budget is escrowed. Import items below: the project is listed once it has some.".to_owned()
        })
    }
}

fn percent(part: u64, whole: u64) -> String {
    if whole == 0 {
        "—".to_owned()
    } else {
        format!("{:.1}%", 100.0 * part as f64 / whole as f64)
    }
}

/// Resolved items per tenth of confidence, as bars from 0–10% on the left to 90–100% on the
/// right, each with its count in its title; `None` before any item resolved.
fn confidence_chart(bins: &[u64]) -> Option<String> {
    let top = bins.iter().copied().max().filter(|&top| top > 0)?;
    let frame = Frame {
        width: 640.0,
        height: 200.0,
        left: 28.0,
        bottom: 32.0,
        top: 32.0,
    };
    let (slot, plot, base, left) = (
        frame.slot(bins.len()),
        frame.plot(),
        frame.base(),
        frame.left,
    );
    let bar = slot * 0.8;
    let mut svg = frame.open(
        "confidence",
        "Resolved items by the confidence of their label",
        "One bar per tenth of confidence, from 0–10% on the left to 90–100% on the right, as it stood when each item resolved.",
        &format!("{top} items"),
    );
    for (tenth, &count) in bins.iter().enumerate() {
        let x = left + slot * tenth as f64 + (slot - bar) / 2.0;
        let h = plot * count as f64 / top as f64;
        let (from, to) = (tenth * 10, tenth * 10 + 10);
        let _ = write!(
            svg,
            r#"<rect x="{x:.1}" y="{y:.1}" width="{bar:.1}" height="{h:.1}" class="spend"><title>{from}–{to}%: {count} item(s)</title></rect><text x="{cx:.1}" y="{ly}" class="tick" text-anchor="middle">{from}%</text>"#,
            y = base - h,
            cx = x + bar / 2.0,
            ly = frame.height - 10.0,
        );
    }
    svg.push_str("</svg>");
    Some(svg)
}

fn request_page(
    node: &Node,
    view: &RequestView,
    viewer: &Viewer,
    project: String,
    page: usize,
    notice: Option<String>,
    import_report: Option<ImportReport>,
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
        from_name: view.label_studio_tags.from_name.clone(),
        to_name: view.label_studio_tags.to_name.clone(),
        confidence_chart: confidence_chart(&status.confidence_at_resolution),
        contributors: view
            .contributors
            .iter()
            .map(|c| {
                let account = c.account.to_checksum();
                ContributorRow {
                    short: short_address(&account),
                    account,
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
                    median_time: c.median_spent_ms.map_or_else(|| "—".to_owned(), time_spent),
                    paused: c.paused.clone().unwrap_or_default(),
                }
            })
            .collect(),
        contributor_count: view.contributor_count,
        page,
        previous: page.checked_sub(1),
        next: (shown < view.contributor_count).then_some(page + 1),
        publications: view.publications.iter().map(ToString::to_string).collect(),
        closed: view.closed,
        reviewers: view.reviewers.iter().map(Address::to_checksum).collect(),
        awaiting_review: status.awaiting_review,
        import_report,
    }
}

/// One page of `project` for `viewer`, off the async runtime.
async fn view_of(
    node: &Arc<Node>,
    viewer: &Viewer,
    id: ProjectId,
    page: usize,
) -> Result<RequestView, PageError> {
    let desk = Arc::clone(node.desk());
    let account = viewer.account;
    Ok(blocking(move || {
        desk.request_view(
            &id,
            account,
            page * CONTRIBUTORS_PER_PAGE,
            CONTRIBUTORS_PER_PAGE,
        )
    })
    .await?)
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
    let view = view_of(&node, &viewer, id, page).await?;
    Ok(render(&request_page(
        &node,
        &view,
        &viewer,
        id.to_string(),
        page,
        query.notice(),
        None,
    )))
}

/// The file format an upload names (as the API's `format` does), or, for `auto`, the one its
/// file name says.
fn upload_format(chosen: &str, file_name: &str) -> Result<ImportFormat, PageError> {
    match chosen {
        "" | "auto" => ImportFormat::from_file_name(file_name).ok_or_else(|| {
            PageError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                format!(
                    "{file_name:?} does not end in .jsonl, .csv or .json, so its format is not known: choose the format in the form."
                ),
            )
        }),
        named => Ok(crate::tasks::data_format(named)?.0),
    }
}

/// What an upload form sent.
struct Upload {
    csrf: String,
    format: String,
    annotations: String,
    file_name: String,
    bytes: Vec<u8>,
}

async fn read_upload(mut form: Multipart) -> Result<Upload, PageError> {
    let unreadable = |e: axum::extract::multipart::MultipartError| {
        PageError::new(
            e.status(),
            format!("The upload could not be read: {}.", e.body_text()),
        )
    };
    let mut upload = Upload {
        csrf: String::new(),
        format: String::new(),
        annotations: String::new(),
        file_name: String::new(),
        bytes: Vec::new(),
    };
    while let Some(field) = form.next_field().await.map_err(unreadable)? {
        match field.name() {
            Some("csrf") => upload.csrf = field.text().await.map_err(unreadable)?,
            Some("format") => upload.format = field.text().await.map_err(unreadable)?,
            Some("annotations") => upload.annotations = field.text().await.map_err(unreadable)?,
            Some("file") => {
                upload.file_name = field.file_name().unwrap_or_default().to_owned();
                upload.bytes = field.bytes().await.map_err(unreadable)?.to_vec();
            }
            _ => {}
        }
    }
    Ok(upload)
}

/// `POST /requests/{project}/items`: a file of items uploaded from the page. A refused file
/// adds nothing and comes back on the project's page with every bad record listed.
pub async fn upload_items(
    State(node): State<Arc<Node>>,
    viewer: Viewer,
    Path(project): Path<String>,
    form: Multipart,
) -> Result<Response, PageError> {
    let upload = read_upload(form).await?;
    viewer.check_csrf(Some(&upload.csrf))?;
    let id = project_id(&project)?;
    if upload.bytes.is_empty() {
        return Err(PageError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "No file came with the form, or it was empty: choose a file of items to import.",
        ));
    }
    let format = upload_format(&upload.format, &upload.file_name)?;
    let annotations = crate::tasks::annotation_use(Some(&upload.annotations))?;
    let text = String::from_utf8(upload.bytes).map_err(|e| {
        PageError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            format!(
                "{:?} is not UTF-8 text (byte {} is not): save it as UTF-8 and upload it again.",
                upload.file_name,
                e.utf8_error().valid_up_to()
            ),
        )
    })?;
    let desk = Arc::clone(node.desk());
    let account = viewer.account;
    let imported =
        blocking(move || Ok::<_, ApiError>(desk.import(&id, account, format, &text, annotations)))
            .await?;
    match imported {
        Ok(imported) => Ok(Redirect::to(&format!(
            "/requests/{project}?imported={}&present={}&prediction_ids={}&relations={}&annotations={}&gold={}&pre_labels={}",
            imported.added,
            imported.already_present,
            imported.skipped.prediction_ids,
            imported.skipped.relations,
            imported.skipped.annotations,
            imported.skipped.annotations_as_gold,
            imported.skipped.annotations_as_pre_labels
        ))
        .into_response()),
        Err(DeskError::Import(refused)) => {
            let report = ImportReport {
                file: upload.file_name,
                bad_records: refused.bad_records,
                unlisted: refused.bad_records - refused.errors.len(),
                listed: refused
                    .errors
                    .into_iter()
                    .map(|e| (format!("{} {}", e.unit, e.record), e.field, e.message))
                    .collect(),
            };
            let view = view_of(&node, &viewer, id, 0).await?;
            let page = request_page(&node, &view, &viewer, id.to_string(), 0, None, Some(report));
            Ok((StatusCode::UNPROCESSABLE_ENTITY, render(&page)).into_response())
        }
        Err(error) => Err(ApiError::from(error).into()),
    }
}

#[derive(Deserialize)]
pub struct ReviewerForm {
    #[serde(default)]
    csrf: String,
    reviewer: String,
}

/// `POST /requests/{project}/reviewers`: lets an account review the project's written and
/// marked answers.
pub async fn add_reviewer(
    State(node): State<Arc<Node>>,
    viewer: Viewer,
    Path(project): Path<String>,
    Form(form): Form<ReviewerForm>,
) -> Result<Redirect, PageError> {
    viewer.check_csrf(Some(&form.csrf))?;
    let id = project_id(&project)?;
    let reviewer: Address = form.reviewer.trim().parse().map_err(|why| {
        PageError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            format!(
                "{:?} is not an account address ({why}): paste the reviewer's 0x address.",
                form.reviewer.trim()
            ),
        )
    })?;
    let desk = Arc::clone(node.desk());
    let account = viewer.account;
    blocking(move || desk.add_reviewer(&id, account, reviewer)).await?;
    Ok(Redirect::to(&format!(
        "/requests/{project}?reviewer={}",
        reviewer.to_checksum()
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

#[cfg(test)]
mod tests {
    use super::time_spent;

    #[test]
    fn times_spent_read_as_truncated_tenths_then_minutes_and_seconds() {
        let shown = [0, 4_099, 59_999, 60_000, 61_999, 125_000].map(time_spent);
        assert_eq!(
            shown,
            [
                "0.0 s",
                "4.0 s",
                "59.9 s",
                "1 min",
                "1 min 1 s",
                "2 min 5 s"
            ]
        );
    }
}
