//! The data-task API: projects, items, work, review, publishing and export.
//!
//! Each handler acts for the authenticated caller (see [`crate::access`]): requesters manage
//! only their own projects, contributors take work and submit only as themselves, reviewers
//! review only where they were added. Older clients' body fields that name the acting account
//! (`requester`, `contributor`, `reviewer`, and the import's `requester` query) are still read,
//! and refused with 403 when they name anyone but the caller.

use std::str::FromStr;
use std::sync::Arc;

use axum::body::{Body, Bytes};
use axum::extract::rejection::QueryRejection;
use axum::extract::{Extension, Path, Query, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use caravan_core::{Address, Hash32, Licence, Ppm};
use caravan_node::Node;
use caravan_node::auth::{Acting, Caller};
use caravan_tasks::board::Verdict;
use caravan_tasks::export::{ExportFormat, export_chunk};
use caravan_tasks::import::{AnnotationUse, ImportFormat};
use caravan_tasks::item::ItemId;
use caravan_tasks::label_studio::check_tag_name;
use caravan_tasks::project::{ProjectId, ProjectSpec};
use caravan_tasks::schema::Answer;
use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};

use crate::error::{ApiError, JsonBody, blocking};

/// The largest request body the task API accepts (an item import), in bytes; the page that
/// uploads items takes the same.
pub const MAX_BODY_BYTES: usize = 64 << 20;

/// A JSON body that may be left out (read as `T::default()`), for requests whose only field
/// used to name the acting account.
pub struct JsonOrEmpty<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned + Default> axum::extract::FromRequest<S>
    for JsonOrEmpty<T>
{
    type Rejection = ApiError;

    async fn from_request(
        request: axum::extract::Request,
        state: &S,
    ) -> Result<Self, Self::Rejection> {
        let bytes = Bytes::from_request(request, state)
            .await
            .map_err(|e| ApiError::bad_request(e.body_text()))?;
        if bytes.iter().all(u8::is_ascii_whitespace) {
            return Ok(JsonOrEmpty(T::default()));
        }
        serde_json::from_slice(&bytes)
            .map(JsonOrEmpty)
            .map_err(|e| {
                ApiError::bad_request(format!("the body is not what this route takes: {e}"))
            })
    }
}

/// The project `text` names: a malformed id is the caller's mistake (400); a well-formed one
/// the node does not hold is answered 404 where it is looked up.
pub fn project_id(text: &str) -> Result<ProjectId, ApiError> {
    Hash32::from_str(text).map(ProjectId).map_err(|e| {
        ApiError::malformed_id(format!(
            "{text:?} is not a project id: give 0x and 64 hexadecimal digits ({e})"
        ))
    })
}

pub fn address(text: &str, what: &str) -> Result<Address, ApiError> {
    Address::from_str(text).map_err(|e| ApiError::bad_request(format!("{what}: {e}")))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateProject {
    #[serde(default)]
    requester: Option<Address>,
    spec: ProjectSpec,
}

pub async fn create_project(
    State(node): State<Arc<Node>>,
    Extension(caller): Extension<Caller>,
    JsonBody(body): JsonBody<CreateProject>,
) -> Result<impl IntoResponse, ApiError> {
    let requester = caller.acting_as(body.requester, Acting::Requester)?;
    let desk = Arc::clone(node.desk());
    let id = blocking(move || desk.create_project(requester, body.spec)).await?;
    Ok((StatusCode::CREATED, axum::Json(json!({ "project": id }))))
}

pub async fn list_projects(State(node): State<Arc<Node>>) -> Result<axum::Json<Value>, ApiError> {
    let desk = node.desk();
    let mut out = Vec::new();
    for id in desk.projects() {
        let (spec, status) = desk.status(&id)?;
        out.push(json!({ "project": id, "title": spec.title, "status": status }));
    }
    Ok(axum::Json(Value::Array(out)))
}

pub async fn project_status(
    State(node): State<Arc<Node>>,
    Path(project): Path<String>,
) -> Result<axum::Json<Value>, ApiError> {
    let id = project_id(&project)?;
    let desk = node.desk();
    let requester = desk.with_board(&id, |b| b.requester)?;
    let (spec, status) = desk.status(&id)?;
    Ok(axum::Json(
        json!({ "project": id, "requester": requester, "spec": spec, "status": status }),
    ))
}

#[derive(Deserialize)]
pub struct ImportQuery {
    format: String,
    #[serde(default)]
    requester: Option<String>,
    /// What a Label Studio file's annotations become: `skip` (the default), `gold` or
    /// `pre_labels`.
    #[serde(default)]
    annotations: Option<String>,
}

/// The annotation use a request names, `skip` when it names none.
pub fn annotation_use(code: Option<&str>) -> Result<AnnotationUse, ApiError> {
    match code {
        None | Some("") => Ok(AnnotationUse::Skip),
        Some(code) => AnnotationUse::from_code(code).ok_or_else(|| {
            ApiError::bad_request(format!(
                "annotations {code:?} is not one of skip, gold, pre_labels"
            ))
        }),
    }
}

pub fn data_format(text: &str) -> Result<(ImportFormat, ExportFormat, &'static str), ApiError> {
    match text {
        "jsonl" => Ok((
            ImportFormat::Jsonl,
            ExportFormat::Jsonl,
            "application/jsonl",
        )),
        "csv" => Ok((ImportFormat::Csv, ExportFormat::Csv, "text/csv")),
        "label_studio" => Ok((
            ImportFormat::LabelStudio,
            ExportFormat::LabelStudio {
                from_name: None,
                to_name: None,
            },
            "application/json",
        )),
        other => Err(ApiError::bad_request(format!(
            "format {other:?} is not one of jsonl, csv, label_studio"
        ))),
    }
}

pub async fn add_items(
    State(node): State<Arc<Node>>,
    Extension(caller): Extension<Caller>,
    Path(project): Path<String>,
    query: Result<Query<ImportQuery>, QueryRejection>,
    body: Bytes,
) -> Result<impl IntoResponse, ApiError> {
    let query = ApiError::query(query)?;
    let id = project_id(&project)?;
    let named = match &query.requester {
        Some(text) => Some(address(text, "requester")?),
        None => None,
    };
    let requester = caller.acting_as(named, Acting::Requester)?;
    let (format, _, _) = data_format(&query.format)?;
    let text = String::from_utf8(body.to_vec())
        .map_err(|e| ApiError::bad_request(format!("the body is not UTF-8 text: {e}")))?;
    let desk = Arc::clone(node.desk());
    let annotations = annotation_use(query.annotations.as_deref())?;
    let imported =
        blocking(move || desk.import(&id, requester, format, &text, annotations)).await?;
    Ok((StatusCode::CREATED, axum::Json(json!(imported))))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AddReviewer {
    #[serde(default)]
    requester: Option<Address>,
    reviewer: Address,
}

pub async fn add_reviewer(
    State(node): State<Arc<Node>>,
    Extension(caller): Extension<Caller>,
    Path(project): Path<String>,
    JsonBody(body): JsonBody<AddReviewer>,
) -> Result<impl IntoResponse, ApiError> {
    let id = project_id(&project)?;
    let requester = caller.acting_as(body.requester, Acting::Requester)?;
    let desk = Arc::clone(node.desk());
    blocking(move || desk.add_reviewer(&id, requester, body.reviewer)).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Requester {
    #[serde(default)]
    requester: Option<Address>,
}

pub async fn close_project(
    State(node): State<Arc<Node>>,
    Extension(caller): Extension<Caller>,
    Path(project): Path<String>,
    JsonOrEmpty(body): JsonOrEmpty<Requester>,
) -> Result<axum::Json<Value>, ApiError> {
    let id = project_id(&project)?;
    let requester = caller.acting_as(body.requester, Acting::Requester)?;
    let desk = Arc::clone(node.desk());
    let released = blocking(move || desk.close_project(&id, requester)).await?;
    Ok(axum::Json(json!({ "released": released.to_string() })))
}

#[derive(Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Contributor {
    #[serde(default)]
    contributor: Option<Address>,
}

pub async fn next_item(
    State(node): State<Arc<Node>>,
    Extension(caller): Extension<Caller>,
    Path(project): Path<String>,
    JsonOrEmpty(body): JsonOrEmpty<Contributor>,
) -> Result<axum::Json<Value>, ApiError> {
    let id = project_id(&project)?;
    let contributor = caller.acting_as(body.contributor, Acting::Contributor)?;
    let assignment = node.desk().next_item(&id, contributor)?;
    Ok(axum::Json(json!(assignment)))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Submission {
    #[serde(default)]
    contributor: Option<Address>,
    item: ItemId,
    answer: Answer,
}

pub async fn submit(
    State(node): State<Arc<Node>>,
    Extension(caller): Extension<Caller>,
    Path(project): Path<String>,
    JsonBody(body): JsonBody<Submission>,
) -> Result<impl IntoResponse, ApiError> {
    let id = project_id(&project)?;
    let contributor = caller.acting_as(body.contributor, Acting::Contributor)?;
    let desk = Arc::clone(node.desk());
    let receipt = blocking(move || desk.submit(&id, contributor, body.item, body.answer)).await?;
    Ok((StatusCode::CREATED, axum::Json(json!(receipt))))
}

#[derive(Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Reviewer {
    #[serde(default)]
    reviewer: Option<Address>,
}

pub async fn next_review(
    State(node): State<Arc<Node>>,
    Extension(caller): Extension<Caller>,
    Path(project): Path<String>,
    JsonOrEmpty(body): JsonOrEmpty<Reviewer>,
) -> Result<Response, ApiError> {
    let id = project_id(&project)?;
    let reviewer = caller.acting_as(body.reviewer, Acting::Reviewer)?;
    Ok(match node.desk().next_review(&id, reviewer)? {
        Some(task) => axum::Json(json!(task)).into_response(),
        None => StatusCode::NO_CONTENT.into_response(),
    })
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Review {
    #[serde(default)]
    reviewer: Option<Address>,
    judgment: u32,
    verdict: Verdict,
}

pub async fn review(
    State(node): State<Arc<Node>>,
    Extension(caller): Extension<Caller>,
    Path(project): Path<String>,
    JsonBody(body): JsonBody<Review>,
) -> Result<axum::Json<Value>, ApiError> {
    let id = project_id(&project)?;
    let reviewer = caller.acting_as(body.reviewer, Acting::Reviewer)?;
    let desk = Arc::clone(node.desk());
    let receipt = blocking(move || desk.review(&id, reviewer, body.judgment, body.verdict)).await?;
    Ok(axum::Json(json!(receipt)))
}

pub async fn contributor_standing(
    State(node): State<Arc<Node>>,
    Extension(caller): Extension<Caller>,
    Path((project, account)): Path<(String, String)>,
) -> Result<axum::Json<Value>, ApiError> {
    let id = project_id(&project)?;
    let account = address(&account, "contributor")?;
    let standing = node.desk().standing(&id, caller.account, account)?;
    standing.map(|s| axum::Json(json!(s))).ok_or_else(|| {
        ApiError::new(
            StatusCode::NOT_FOUND,
            "unknown_contributor",
            format!("{account} has not worked on this project"),
        )
    })
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Publish {
    #[serde(default)]
    requester: Option<Address>,
    name: String,
    licence: Licence,
    /// What the requester keeps as curator, e.g. "10%"; the rest goes to contributors.
    #[serde(default)]
    curator_share: Option<String>,
}

pub async fn publish(
    State(node): State<Arc<Node>>,
    Extension(caller): Extension<Caller>,
    Path(project): Path<String>,
    JsonBody(body): JsonBody<Publish>,
) -> Result<impl IntoResponse, ApiError> {
    let id = project_id(&project)?;
    let requester = caller.acting_as(body.requester, Acting::Requester)?;
    let curator_share = match &body.curator_share {
        Some(text) => Ppm::from_percent_text(text)
            .map_err(|e| ApiError::bad_request(format!("curator_share: {e}")))?,
        None => Ppm::ZERO,
    };
    let desk = Arc::clone(node.desk());
    let (asset, dataset) =
        blocking(move || desk.publish(&id, requester, body.name, body.licence, curator_share))
            .await?;
    Ok((
        StatusCode::CREATED,
        axum::Json(json!({
            "asset": asset,
            "item_root": dataset.item_root,
            "content": dataset.content_hash(),
            "rows": dataset.rows.len(),
            "contributors": dataset.contributors,
        })),
    ))
}

#[derive(Deserialize)]
pub struct ExportQuery {
    format: String,
    /// Label Studio only: the names of the config's answering tag and of the tag it labels.
    from_name: Option<String>,
    to_name: Option<String>,
}

impl ExportQuery {
    /// The format asked for, with the Label Studio tag names given, and its content type.
    fn format(self) -> Result<(ExportFormat, &'static str), ApiError> {
        let (_, format, content_type) = data_format(&self.format)?;
        let named = self.from_name.is_some() || self.to_name.is_some();
        match format {
            ExportFormat::LabelStudio { .. } => {
                for name in [&self.from_name, &self.to_name].into_iter().flatten() {
                    check_tag_name(name).map_err(ApiError::bad_request)?;
                }
                Ok((
                    ExportFormat::LabelStudio {
                        from_name: self.from_name,
                        to_name: self.to_name,
                    },
                    content_type,
                ))
            }
            _ if named => Err(ApiError::bad_request(
                "from_name and to_name name Label Studio's tags: use them with format=label_studio",
            )),
            format => Ok((format, content_type)),
        }
    }
}

pub async fn export(
    State(node): State<Arc<Node>>,
    Extension(caller): Extension<Caller>,
    Path(project): Path<String>,
    query: Result<Query<ExportQuery>, QueryRejection>,
) -> Result<Response, ApiError> {
    let query = ApiError::query(query)?;
    let id = project_id(&project)?;
    let (format, content_type) = query.format()?;
    // Saved as a file by a browser, named after the project and the format.
    let extension = match format {
        ExportFormat::Jsonl => "jsonl",
        ExportFormat::Csv => "csv",
        ExportFormat::LabelStudio { .. } => "label-studio.json",
    };
    let disposition = format!(
        "attachment; filename=\"caravan-{}.{extension}\"",
        &id.0.to_string()[2..14]
    );
    let desk = Arc::clone(node.desk());
    let requester = caller.account;
    let (_, dataset, board) = blocking(move || desk.published_for(&id, requester)).await?;
    // Rendered row by row as the client reads: the export is never built whole in memory.
    let published = Arc::new((dataset, board, format));
    let stream = futures_util::stream::unfold(0usize, move |n| {
        let published = published.clone();
        async move {
            let (dataset, board, format) = &*published;
            export_chunk(dataset, board, format, n)
                .map(|chunk| (Ok::<_, std::convert::Infallible>(Bytes::from(chunk)), n + 1))
        }
    });
    Ok((
        [
            (header::CONTENT_TYPE, content_type.to_owned()),
            (header::CONTENT_DISPOSITION, disposition),
        ],
        Body::from_stream(stream),
    )
        .into_response())
}
