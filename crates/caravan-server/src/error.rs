//! The API's errors: a 4xx or 5xx status and a body `{"error": {"code": "...", "message": "..."}}`
//! whose message says what was wrong and how to fix it. A fault inside the node is a 5xx, never a
//! 4xx that blames the caller; no message repeats a secret.

use axum::extract::{FromRequest, Request};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use caravan_core::lineage::LineageError;
use caravan_node::auth::AuthError;
use caravan_node::desk::DeskError;
use caravan_node::earnings::EarningsError;
use caravan_node::gateway::usage::UsageError;
use caravan_node::sessions::{SessionError, SignInError};
use caravan_node::settlement::ChainsError;
use caravan_tasks::board::{AssignError, ReviewError};
use serde_json::json;

/// An API error: status, a stable machine-readable code and a message for people.
#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub code: &'static str,
    pub message: String,
    /// More for a program to act on, beside `code` and `message` in the body's `error`: an
    /// import's bad records, each with its place and field.
    pub details: Option<(&'static str, serde_json::Value)>,
}

impl ApiError {
    pub fn new(status: StatusCode, code: &'static str, message: impl ToString) -> ApiError {
        ApiError {
            status,
            code,
            message: message.to_string(),
            details: None,
        }
    }

    pub fn bad_request(message: impl ToString) -> ApiError {
        ApiError::new(StatusCode::BAD_REQUEST, "invalid_request", message)
    }

    /// A path or query names something by an id that cannot be one (a project id that is not
    /// 32 bytes of hex, an epoch that is not a number): 400, where an id the node does not
    /// know is 404.
    pub fn malformed_id(message: impl ToString) -> ApiError {
        ApiError::new(StatusCode::BAD_REQUEST, "malformed_id", message)
    }

    /// A query string the route cannot read: 400 in this shape, where axum's own rejection
    /// answers plain text the API document does not describe.
    pub fn query<T>(
        query: Result<axum::extract::Query<T>, axum::extract::rejection::QueryRejection>,
    ) -> Result<T, ApiError> {
        query
            .map(|axum::extract::Query(query)| query)
            .map_err(|rejection| {
                ApiError::new(
                    StatusCode::BAD_REQUEST,
                    "invalid_query",
                    rejection.body_text(),
                )
            })
    }

    pub fn internal(message: impl ToString) -> ApiError {
        ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", message)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut error = json!({ "code": self.code, "message": self.message });
        if let Some((name, value)) = self.details {
            error[name] = value;
        }
        let body = json!({ "error": error });
        (self.status, axum::Json(body)).into_response()
    }
}

impl From<AuthError> for ApiError {
    fn from(error: AuthError) -> ApiError {
        use StatusCode as S;
        let (status, code) = match &error {
            AuthError::Session(SessionError::Store(_)) => (S::SERVICE_UNAVAILABLE, "storage"),
            AuthError::NotYou { .. } => (S::FORBIDDEN, "not_your_account"),
            AuthError::NotOperator { .. } => (S::FORBIDDEN, "not_operator"),
            AuthError::CrossSite { .. } => (S::FORBIDDEN, "cross_site"),
            AuthError::Key(caravan_node::keys::KeyError::Scope { .. }) => {
                (S::FORBIDDEN, "insufficient_scope")
            }
            AuthError::Unauthenticated(_)
            | AuthError::OperatorUnauthenticated
            | AuthError::SessionRequired
            | AuthError::Session(SessionError::Unknown)
            | AuthError::Key(_) => (S::UNAUTHORIZED, "unauthenticated"),
        };
        ApiError::new(status, code, error)
    }
}

impl From<SignInError> for ApiError {
    fn from(error: SignInError) -> ApiError {
        use StatusCode as S;
        let (status, code) = match &error {
            SignInError::Malformed(_) => (S::BAD_REQUEST, "malformed_message"),
            SignInError::MalformedSignature(_) => (S::BAD_REQUEST, "malformed_signature"),
            SignInError::WrongDomain { .. } => (S::UNAUTHORIZED, "wrong_domain"),
            SignInError::WrongUri { .. } => (S::UNAUTHORIZED, "wrong_uri"),
            SignInError::WrongVersion(_) => (S::UNAUTHORIZED, "wrong_version"),
            SignInError::UnknownChain { .. } => (S::UNAUTHORIZED, "unknown_chain"),
            SignInError::IssuedInTheFuture { .. } => (S::UNAUTHORIZED, "issued_in_the_future"),
            SignInError::IssuedTooLongAgo { .. } => (S::UNAUTHORIZED, "issued_too_long_ago"),
            SignInError::Expired(_) => (S::UNAUTHORIZED, "message_expired"),
            SignInError::NotYetValid(_) => (S::UNAUTHORIZED, "not_yet_valid"),
            SignInError::WrongSigner { .. } => (S::UNAUTHORIZED, "wrong_signer"),
            SignInError::UnknownNonce(_) => (S::UNAUTHORIZED, "unknown_nonce"),
            SignInError::ContractWalletUnavailable { .. } => {
                (S::SERVICE_UNAVAILABLE, "chain_unavailable")
            }
            SignInError::Store(_) => (S::SERVICE_UNAVAILABLE, "storage"),
        };
        ApiError::new(status, code, error)
    }
}

impl From<SessionError> for ApiError {
    fn from(error: SessionError) -> ApiError {
        ApiError::from(AuthError::Session(error))
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
            DeskError::Import(errors) => {
                let records: Vec<serde_json::Value> = errors
                    .errors
                    .iter()
                    .map(|e| {
                        json!({ "unit": e.unit, "record": e.record, "field": e.field, "message": e.message })
                    })
                    .collect();
                let mut refused = ApiError::new(S::UNPROCESSABLE_ENTITY, "invalid_import", &error);
                refused.details = Some((
                    "records",
                    json!({ "listed": records, "bad_records": errors.bad_records }),
                ));
                return refused;
            }
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
            DeskError::Skip(_) => (S::UNPROCESSABLE_ENTITY, "skip_refused"),
            DeskError::Undo(_) => (S::CONFLICT, "undo_refused"),
            DeskError::Review(ReviewError::NotReviewer(_)) => (S::FORBIDDEN, "not_reviewer"),
            DeskError::Review(_) => (S::UNPROCESSABLE_ENTITY, "review_refused"),
            DeskError::NotYourStanding { .. } => (S::FORBIDDEN, "not_your_account"),
            DeskError::Dataset(_) => (S::CONFLICT, "nothing_to_publish"),
            DeskError::NotPublished(_) => (S::CONFLICT, "not_published"),
            DeskError::UnknownDataset(_) => (S::NOT_FOUND, "unknown_dataset"),
            DeskError::UnknownChain(_) => (S::UNPROCESSABLE_ENTITY, "unknown_chain"),
            DeskError::Refused(_) => (S::INTERNAL_SERVER_ERROR, "refused_internally"),
            DeskError::Publish(LineageError::AlreadyRegistered(_)) => {
                (S::CONFLICT, "already_published")
            }
            DeskError::Publish(_) => (S::UNPROCESSABLE_ENTITY, "invalid_dataset"),
            DeskError::Store(_) => (S::SERVICE_UNAVAILABLE, "storage"),
            DeskError::CorruptRecord { .. } => (S::INTERNAL_SERVER_ERROR, "corrupt_record"),
        };
        ApiError::new(status, code, error)
    }
}

impl From<ChainsError> for ApiError {
    fn from(error: ChainsError) -> ApiError {
        use StatusCode as S;
        let (status, code) = match &error {
            ChainsError::Invalid(_) => (S::UNPROCESSABLE_ENTITY, "invalid"),
            ChainsError::Unknown(_) => (S::NOT_FOUND, "unknown_chain"),
            ChainsError::Conflict(_) => (S::CONFLICT, "conflict"),
            ChainsError::Chain(_) => (S::BAD_GATEWAY, "chain"),
            ChainsError::Node(_) => (S::INTERNAL_SERVER_ERROR, "internal"),
        };
        ApiError::new(status, code, error)
    }
}

impl From<UsageError> for ApiError {
    fn from(error: UsageError) -> ApiError {
        let (status, code) = match &error {
            UsageError::Days(_) => (StatusCode::BAD_REQUEST, "invalid_days"),
            UsageError::Store(_) => (StatusCode::SERVICE_UNAVAILABLE, "store_unavailable"),
        };
        ApiError::new(status, code, error)
    }
}

impl From<EarningsError> for ApiError {
    fn from(error: EarningsError) -> ApiError {
        match error {
            EarningsError::Desk(error) => error.into(),
            EarningsError::Chains(error) => error.into(),
            EarningsError::NothingToClaim(_) => {
                ApiError::new(StatusCode::CONFLICT, "nothing_to_claim", error)
            }
            EarningsError::UnknownChain(_) => {
                ApiError::new(StatusCode::NOT_FOUND, "unknown_chain", error)
            }
            EarningsError::WrongWay(_) => {
                ApiError::new(StatusCode::CONFLICT, "claim_elsewhere", error)
            }
            EarningsError::UnknownEpoch(_) => {
                ApiError::new(StatusCode::NOT_FOUND, "unknown_epoch", error)
            }
            EarningsError::UnknownAsset(_) => {
                ApiError::new(StatusCode::NOT_FOUND, "unknown_asset", error)
            }
            EarningsError::BadPage(_) => ApiError::new(StatusCode::BAD_REQUEST, "bad_page", error),
        }
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

/// Runs a service call (which may wait for a disk sync) off the async workers.
pub async fn blocking<T: Send + 'static, E: Into<ApiError> + Send + 'static>(
    call: impl FnOnce() -> Result<T, E> + Send + 'static,
) -> Result<T, ApiError> {
    tokio::task::spawn_blocking(call)
        .await
        .map_err(|e| ApiError::internal(format!("the request failed inside the node: {e}")))?
        .map_err(Into::into)
}

#[cfg(test)]
mod tests {
    use super::*;
    use caravan_core::AssetId;

    /// A refusal of what the node itself had checked is the node's fault: a 5xx saying so,
    /// never a 4xx that sends the caller to fix a request that was fine. What the caller can
    /// change stays a 4xx.
    #[test]
    fn the_node_s_own_faults_are_5xx_and_the_caller_s_are_4xx() {
        let refused = ApiError::from(DeskError::Refused("budget overdrawn".into()));
        assert_eq!(refused.status, StatusCode::INTERNAL_SERVER_ERROR);
        assert!(
            refused.message.contains("fault in the node"),
            "{}",
            refused.message
        );
        let corrupt = ApiError::from(DeskError::CorruptRecord {
            seq: 7,
            why: "not JSON".into(),
        });
        assert_eq!(corrupt.status, StatusCode::INTERNAL_SERVER_ERROR);
        let twice = ApiError::from(DeskError::Publish(LineageError::AlreadyRegistered(
            AssetId(caravan_core::keccak256(b"a dataset")),
        )));
        assert_eq!(
            (twice.status, twice.code),
            (StatusCode::CONFLICT, "already_published")
        );
    }
}
