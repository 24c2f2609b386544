//! The data-task JSON API. Every error answers with a 4xx or 5xx status and a body
//! `{"error": {"code": "...", "message": "..."}}` whose message says what was wrong and how to
//! fix it.

use std::str::FromStr;
use std::sync::Arc;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{FromRequest, Path, Query, Request, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use caravan_core::{Address, Hash32, Licence, Ppm};
use caravan_tasks::board::{AssignError, Verdict};
use caravan_tasks::export::{ExportFormat, export_chunk};
use caravan_tasks::import::{ImportFormat, import_items};
use caravan_tasks::item::ItemId;
use caravan_tasks::project::{ProjectId, ProjectSpec};
use caravan_tasks::schema::Answer;
use serde::Deserialize;
use serde_json::{Value, json};

use caravan_node::chains::PayoutChain;
use caravan_node::desk::{Desk, DeskError};

/// The largest request body accepted (an item import), in bytes.
pub const MAX_BODY_BYTES: usize = 64 << 20;

/// The API's routes over a shared desk.
pub fn router(desk: Arc<Desk>) -> Router {
    Router::new()
        .route("/v1/openapi.json", get(openapi))
        .route("/v1/projects", post(create_project).get(list_projects))
        .route("/v1/projects/{project}", get(project_status))
        .route("/v1/projects/{project}/items", post(add_items))
        .route("/v1/projects/{project}/reviewers", post(add_reviewer))
        .route("/v1/projects/{project}/next", post(next_item))
        .route("/v1/projects/{project}/judgments", post(submit))
        .route("/v1/projects/{project}/reviews/next", post(next_review))
        .route("/v1/projects/{project}/reviews", post(review))
        .route(
            "/v1/projects/{project}/contributors/{account}",
            get(contributor_standing),
        )
        .route("/v1/projects/{project}/publish", post(publish))
        .route("/v1/projects/{project}/close", post(close_project))
        .route("/v1/projects/{project}/export", get(export))
        .route("/v1/epochs", get(list_epochs))
        .route("/v1/epochs/{epoch}", get(epoch_status))
        .route("/v1/epochs/{epoch}/proofs/{account}", get(epoch_proofs))
        .route("/v1/chains", get(list_chains))
        .route(
            "/v1/accounts/{account}/payout-chain",
            get(payout_chain).put(choose_payout_chain),
        )
        .layer(axum::extract::DefaultBodyLimit::max(MAX_BODY_BYTES))
        .with_state(desk)
}

/// An API error: status, a stable machine-readable code and a message for people.
#[derive(Debug)]
pub struct ApiError {
    status: StatusCode,
    code: &'static str,
    message: String,
}

impl ApiError {
    fn new(status: StatusCode, code: &'static str, message: impl ToString) -> ApiError {
        ApiError {
            status,
            code,
            message: message.to_string(),
        }
    }

    fn bad_request(message: impl ToString) -> ApiError {
        ApiError::new(StatusCode::BAD_REQUEST, "invalid_request", message)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = json!({ "error": { "code": self.code, "message": self.message } });
        (self.status, axum::Json(body)).into_response()
    }
}

impl From<DeskError> for ApiError {
    fn from(error: DeskError) -> ApiError {
        use StatusCode as S;
        let (status, code) = match &error {
            DeskError::UnknownProject(_) => (S::NOT_FOUND, "unknown_project"),
            DeskError::NotRequester { .. } => (S::FORBIDDEN, "not_requester"),
            DeskError::Spec(_) => (S::UNPROCESSABLE_ENTITY, "invalid_spec"),
            DeskError::UnknownToken(_) => (S::UNPROCESSABLE_ENTITY, "unknown_token"),
            DeskError::InsufficientBalance { .. } => (S::PAYMENT_REQUIRED, "insufficient_balance"),
            DeskError::ProjectExists(_) => (S::CONFLICT, "project_exists"),
            DeskError::Item { .. } => (S::UNPROCESSABLE_ENTITY, "invalid_item"),
            DeskError::Assign(e) => (
                S::CONFLICT,
                match e {
                    AssignError::Paused(_) => "paused",
                    AssignError::Closed => "closed",
                    AssignError::DeadlinePassed => "deadline_passed",
                    AssignError::DailyCap { .. } => "daily_cap",
                    AssignError::BudgetCommitted => "budget_committed",
                    AssignError::NotEnoughGold { .. } => "not_enough_gold",
                    AssignError::NothingLeft => "nothing_left",
                },
            ),
            DeskError::Submit(_) => (S::UNPROCESSABLE_ENTITY, "submission_refused"),
            DeskError::Review(_) => (S::UNPROCESSABLE_ENTITY, "review_refused"),
            DeskError::Dataset(_) => (S::CONFLICT, "nothing_to_publish"),
            DeskError::NotPublished(_) => (S::CONFLICT, "not_published"),
            DeskError::UnknownDataset(_) => (S::NOT_FOUND, "unknown_dataset"),
            DeskError::UnknownChain(_) => (S::UNPROCESSABLE_ENTITY, "unknown_chain"),
            DeskError::Refused(_) => (S::CONFLICT, "refused"),
            DeskError::Store(_) => (S::SERVICE_UNAVAILABLE, "storage"),
            DeskError::CorruptRecord { .. } => (S::INTERNAL_SERVER_ERROR, "corrupt_record"),
        };
        ApiError::new(status, code, error)
    }
}

/// A JSON body whose parse errors come back in the API's error shape, naming the field.
pub struct JsonBody<T>(pub T);

impl<S: Send + Sync, T: serde::de::DeserializeOwned> FromRequest<S> for JsonBody<T> {
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &S) -> Result<Self, Self::Rejection> {
        match axum::Json::<T>::from_request(request, state).await {
            Ok(axum::Json(value)) => Ok(JsonBody(value)),
            Err(rejection) => Err(ApiError::bad_request(rejection.body_text())),
        }
    }
}

/// Runs a desk call (which may wait for a disk sync) off the async workers.
async fn blocking<T: Send + 'static>(
    call: impl FnOnce() -> Result<T, DeskError> + Send + 'static,
) -> Result<T, ApiError> {
    tokio::task::spawn_blocking(call)
        .await
        .map_err(|e| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", e))?
        .map_err(ApiError::from)
}

fn project_id(text: &str) -> Result<ProjectId, ApiError> {
    Hash32::from_str(text).map(ProjectId).map_err(|e| {
        ApiError::new(
            StatusCode::NOT_FOUND,
            "unknown_project",
            format!("{text:?} is not a project id (0x and 64 hex digits): {e}"),
        )
    })
}

fn address(text: &str, what: &str) -> Result<Address, ApiError> {
    Address::from_str(text).map_err(|e| ApiError::bad_request(format!("{what}: {e}")))
}

async fn openapi() -> axum::Json<Value> {
    axum::Json(crate::openapi::document())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CreateProject {
    requester: Address,
    spec: ProjectSpec,
}

async fn create_project(
    State(desk): State<Arc<Desk>>,
    JsonBody(body): JsonBody<CreateProject>,
) -> Result<impl IntoResponse, ApiError> {
    let id = blocking(move || desk.create_project(body.requester, body.spec)).await?;
    Ok((StatusCode::CREATED, axum::Json(json!({ "project": id }))))
}

async fn list_projects(State(desk): State<Arc<Desk>>) -> Result<axum::Json<Value>, ApiError> {
    let mut out = Vec::new();
    for id in desk.projects() {
        let (spec, status) = desk.status(&id)?;
        out.push(json!({ "project": id, "title": spec.title, "status": status }));
    }
    Ok(axum::Json(Value::Array(out)))
}

async fn project_status(
    State(desk): State<Arc<Desk>>,
    Path(project): Path<String>,
) -> Result<axum::Json<Value>, ApiError> {
    let id = project_id(&project)?;
    let requester = desk.with_board(&id, |b| b.requester)?;
    let (spec, status) = desk.status(&id)?;
    Ok(axum::Json(
        json!({ "project": id, "requester": requester, "spec": spec, "status": status }),
    ))
}

#[derive(Deserialize)]
struct ImportQuery {
    format: String,
    requester: String,
}

async fn add_items(
    State(desk): State<Arc<Desk>>,
    Path(project): Path<String>,
    Query(query): Query<ImportQuery>,
    body: Bytes,
) -> Result<impl IntoResponse, ApiError> {
    let id = project_id(&project)?;
    let requester = address(&query.requester, "requester")?;
    let format = match query.format.as_str() {
        "jsonl" => ImportFormat::Jsonl,
        "csv" => ImportFormat::Csv,
        "label_studio" => ImportFormat::LabelStudio,
        other => {
            return Err(ApiError::bad_request(format!(
                "format {other:?} is not one of jsonl, csv, label_studio"
            )));
        }
    };
    let text = String::from_utf8(body.to_vec())
        .map_err(|e| ApiError::bad_request(format!("the body is not UTF-8 text: {e}")))?;
    let schema = desk.with_board(&id, |b| b.spec.schema.clone())?;
    let items = import_items(format, &text, &schema)
        .map_err(|e| ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "invalid_import", e))?;
    let submitted = items.len();
    let added = blocking(move || desk.add_items(&id, requester, items)).await?;
    Ok((
        StatusCode::CREATED,
        axum::Json(json!({ "added": added, "already_present": submitted - added })),
    ))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct AddReviewer {
    requester: Address,
    reviewer: Address,
}

async fn add_reviewer(
    State(desk): State<Arc<Desk>>,
    Path(project): Path<String>,
    JsonBody(body): JsonBody<AddReviewer>,
) -> Result<impl IntoResponse, ApiError> {
    let id = project_id(&project)?;
    blocking(move || desk.add_reviewer(&id, body.requester, body.reviewer)).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Requester {
    requester: Address,
}

async fn close_project(
    State(desk): State<Arc<Desk>>,
    Path(project): Path<String>,
    JsonBody(body): JsonBody<Requester>,
) -> Result<axum::Json<Value>, ApiError> {
    let id = project_id(&project)?;
    let released = blocking(move || desk.close_project(&id, body.requester)).await?;
    Ok(axum::Json(json!({ "released": released.to_string() })))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Contributor {
    contributor: Address,
}

async fn next_item(
    State(desk): State<Arc<Desk>>,
    Path(project): Path<String>,
    JsonBody(body): JsonBody<Contributor>,
) -> Result<axum::Json<Value>, ApiError> {
    let id = project_id(&project)?;
    let assignment = desk.next_item(&id, body.contributor)?;
    Ok(axum::Json(json!(assignment)))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Submission {
    contributor: Address,
    item: ItemId,
    answer: Answer,
}

async fn submit(
    State(desk): State<Arc<Desk>>,
    Path(project): Path<String>,
    JsonBody(body): JsonBody<Submission>,
) -> Result<impl IntoResponse, ApiError> {
    let id = project_id(&project)?;
    let receipt =
        blocking(move || desk.submit(&id, body.contributor, body.item, body.answer)).await?;
    Ok((StatusCode::CREATED, axum::Json(json!(receipt))))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Reviewer {
    reviewer: Address,
}

async fn next_review(
    State(desk): State<Arc<Desk>>,
    Path(project): Path<String>,
    JsonBody(body): JsonBody<Reviewer>,
) -> Result<Response, ApiError> {
    let id = project_id(&project)?;
    Ok(match desk.next_review(&id, body.reviewer)? {
        Some(task) => axum::Json(json!(task)).into_response(),
        None => StatusCode::NO_CONTENT.into_response(),
    })
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Review {
    reviewer: Address,
    judgment: u32,
    verdict: Verdict,
}

async fn review(
    State(desk): State<Arc<Desk>>,
    Path(project): Path<String>,
    JsonBody(body): JsonBody<Review>,
) -> Result<axum::Json<Value>, ApiError> {
    let id = project_id(&project)?;
    let receipt =
        blocking(move || desk.review(&id, body.reviewer, body.judgment, body.verdict)).await?;
    Ok(axum::Json(json!(receipt)))
}

async fn contributor_standing(
    State(desk): State<Arc<Desk>>,
    Path((project, account)): Path<(String, String)>,
) -> Result<axum::Json<Value>, ApiError> {
    let id = project_id(&project)?;
    let account = address(&account, "contributor")?;
    let standing = desk.with_board(&id, |board| {
        board.contributor(&account).map(|c| {
            json!({
                "contributor": account,
                "skill": c.skill(),
                "exam": c.exam,
                "gold_answered": c.gold_seen,
                "gold_right": c.gold_correct,
                "submitted": c.submitted,
                "accepted": c.accepted,
                "rejected": c.rejected,
                "earned": (u128::from(c.accepted) * board.spec.bounty).to_string(),
                "paused": c.paused.as_ref().map(|r| r.to_string()),
            })
        })
    })?;
    standing.map(axum::Json).ok_or_else(|| {
        ApiError::new(
            StatusCode::NOT_FOUND,
            "unknown_contributor",
            format!("{account} has not worked on this project"),
        )
    })
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Publish {
    requester: Address,
    name: String,
    licence: Licence,
    /// What the requester keeps as curator, e.g. "10%"; the rest goes to contributors.
    #[serde(default)]
    curator_share: Option<String>,
}

async fn publish(
    State(desk): State<Arc<Desk>>,
    Path(project): Path<String>,
    JsonBody(body): JsonBody<Publish>,
) -> Result<impl IntoResponse, ApiError> {
    let id = project_id(&project)?;
    let curator_share = match &body.curator_share {
        Some(text) => Ppm::from_percent_text(text)
            .map_err(|e| ApiError::bad_request(format!("curator_share: {e}")))?,
        None => Ppm::ZERO,
    };
    let (asset, dataset) =
        blocking(move || desk.publish(&id, body.requester, body.name, body.licence, curator_share))
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
struct ExportQuery {
    format: String,
}

async fn export(
    State(desk): State<Arc<Desk>>,
    Path(project): Path<String>,
    Query(query): Query<ExportQuery>,
) -> Result<Response, ApiError> {
    let id = project_id(&project)?;
    let (format, content_type) = match query.format.as_str() {
        "jsonl" => (ExportFormat::Jsonl, "application/jsonl"),
        "csv" => (ExportFormat::Csv, "text/csv"),
        "label_studio" => (ExportFormat::LabelStudio, "application/json"),
        other => {
            return Err(ApiError::bad_request(format!(
                "format {other:?} is not one of jsonl, csv, label_studio"
            )));
        }
    };
    let (_, dataset, board) = blocking(move || desk.published(&id)).await?;
    // Rendered row by row as the client reads: the export is never built whole in memory.
    let published = Arc::new((dataset, board));
    let stream = futures_util::stream::unfold(0usize, move |n| {
        let published = published.clone();
        async move {
            let (dataset, board) = &*published;
            export_chunk(dataset, board, format, n)
                .map(|chunk| (Ok::<_, std::convert::Infallible>(Bytes::from(chunk)), n + 1))
        }
    });
    Ok((
        [(header::CONTENT_TYPE, content_type)],
        Body::from_stream(stream),
    )
        .into_response())
}

fn epoch_json(record: &caravan_core::EpochRecord) -> Value {
    json!({
        "epoch": record.epoch,
        "root": record.root,
        "leaves": record.leaf_count,
        "closed_at_ms": record.at_ms,
        "event_seq": record.seq,
    })
}

async fn list_epochs(State(desk): State<Arc<Desk>>) -> axum::Json<Value> {
    let epochs: Vec<Value> = desk
        .journal()
        .read(|j| j.economy().epochs().iter().map(epoch_json).collect());
    axum::Json(Value::Array(epochs))
}

fn closed_epoch(desk: &Desk, text: &str) -> Result<caravan_core::EpochRecord, ApiError> {
    let unknown = |why: String| ApiError::new(StatusCode::NOT_FOUND, "unknown_epoch", why);
    let epoch: u64 = text
        .parse()
        .map_err(|_| unknown(format!("{text:?} is not an epoch number (1, 2, …)")))?;
    desk.journal()
        .read(|j| {
            j.economy()
                .epochs()
                .iter()
                .find(|r| r.epoch == epoch)
                .cloned()
        })
        .ok_or_else(|| unknown(format!("epoch {epoch} is not closed")))
}

async fn epoch_status(
    State(desk): State<Arc<Desk>>,
    Path(epoch): Path<String>,
) -> Result<axum::Json<Value>, ApiError> {
    Ok(axum::Json(epoch_json(&closed_epoch(&desk, &epoch)?)))
}

/// An account's leaves in an epoch with their Merkle proofs, per chain that pays it: what a
/// wallet submits to claim.
async fn epoch_proofs(
    State(desk): State<Arc<Desk>>,
    Path((epoch, account)): Path<(String, String)>,
) -> Result<axum::Json<Value>, ApiError> {
    let record = closed_epoch(&desk, &epoch)?;
    let account = address(&account, "account")?;
    let epoch = record.epoch;
    let chains = blocking(move || {
        let bundle = desk
            .journal()
            .read(|j| j.bundle(epoch))?
            .ok_or(DeskError::Refused(format!(
                "the bundle of epoch {epoch} is missing"
            )))?;
        let mut chains = Vec::new();
        for partition in bundle.paying_chains() {
            let leaves = bundle.chain_leaves(partition);
            if !leaves.iter().any(|l| l.account == account) {
                continue;
            }
            let tree = caravan_core::MerkleTree::build(&leaves);
            let proofs: Vec<Value> = leaves
                .iter()
                .enumerate()
                .filter(|(_, l)| l.account == account)
                .map(|(i, l)| {
                    json!({
                        "token": l.token,
                        "cumulative": l.cumulative.to_string(),
                        "proof": tree.proof(i),
                    })
                })
                .collect();
            chains.push(json!({
                "home": partition == caravan_core::HOME_CHAIN,
                "chain": chain_json(desk.chains().of_partition(partition), partition),
                "root": tree.root(),
                "leaves": proofs,
            }));
        }
        Ok(chains)
    })
    .await?;
    if chains.is_empty() {
        return Err(ApiError::new(
            StatusCode::NOT_FOUND,
            "no_entitlement",
            format!("{account} has no entitlement in epoch {epoch}"),
        ));
    }
    Ok(axum::Json(
        json!({ "epoch": epoch, "account": account, "chains": chains }),
    ))
}

/// A chain as the API shows it; a share the node has no chain for shows its chain id alone
/// (home on a node given no chain directory shows `{"home": true}`).
fn chain_json(chain: Option<&PayoutChain>, partition: u64) -> Value {
    match chain {
        Some(chain) => json!(chain),
        None if partition == caravan_core::HOME_CHAIN => json!({ "home": true }),
        None => json!({ "chain_id": partition, "home": false }),
    }
}

async fn list_chains(State(desk): State<Arc<Desk>>) -> axum::Json<Value> {
    axum::Json(json!(desk.chains().chains().collect::<Vec<_>>()))
}

async fn payout_chain(
    State(desk): State<Arc<Desk>>,
    Path(account): Path<String>,
) -> Result<axum::Json<Value>, ApiError> {
    let account = address(&account, "account")?;
    let (partition, chain) = desk.payout_chain(&account);
    Ok(axum::Json(json!({
        "account": account,
        "chain": chain_json(chain.as_ref(), partition),
    })))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ChoosePayoutChain {
    /// The chain id to be paid on, or 0 for the node's home chain.
    chain_id: u64,
}

async fn choose_payout_chain(
    State(desk): State<Arc<Desk>>,
    Path(account): Path<String>,
    JsonBody(body): JsonBody<ChoosePayoutChain>,
) -> Result<axum::Json<Value>, ApiError> {
    let account = address(&account, "account")?;
    let (partition, chain) =
        blocking(move || desk.choose_payout_chain(account, body.chain_id)).await?;
    Ok(axum::Json(json!({
        "account": account,
        "chain": chain_json(chain.as_ref(), partition),
    })))
}
