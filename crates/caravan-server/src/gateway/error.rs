//! Errors in OpenAI's shape, `{"error": {"message", "type", "param", "code"}}`, which OpenAI's
//! own clients read: what was wrong and how to fix it, never a secret.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use caravan_node::auth::AuthError;
use caravan_node::gateway::GatewayError;
use caravan_node::gateway::usage::UsageError;
use caravan_node::keys::{KeyError, KeysError};
use caravan_node::sessions::SessionError;
use serde_json::json;

/// An error in OpenAI's shape.
#[derive(Debug)]
pub struct OpenAiError {
    status: StatusCode,
    kind: &'static str,
    code: &'static str,
    param: Option<String>,
    message: String,
}

impl OpenAiError {
    /// A 400 `invalid_request_error` (another status with [`OpenAiError::with_status`]).
    pub fn invalid(code: &'static str, param: Option<&str>, message: impl ToString) -> OpenAiError {
        OpenAiError {
            status: StatusCode::BAD_REQUEST,
            kind: "invalid_request_error",
            code,
            param: param.map(str::to_owned),
            message: message.to_string(),
        }
    }

    /// A fault on the node's side (5xx), which clients may retry.
    pub fn api_error(
        status: StatusCode,
        code: &'static str,
        message: impl ToString,
    ) -> OpenAiError {
        OpenAiError {
            status,
            kind: "api_error",
            code,
            param: None,
            message: message.to_string(),
        }
    }

    pub fn with_status(mut self, status: StatusCode) -> OpenAiError {
        self.status = status;
        self
    }
}

impl IntoResponse for OpenAiError {
    fn into_response(self) -> Response {
        let body = json!({ "error": {
            "message": self.message,
            "type": self.kind,
            "param": self.param,
            "code": self.code,
        }});
        let mut response = (self.status, axum::Json(body)).into_response();
        if self.code == "insufficient_quota" {
            // OpenAI's official clients retry a 429 unless told not to; a balance does not
            // grow by retrying.
            response.headers_mut().insert(
                "x-should-retry",
                axum::http::HeaderValue::from_static("false"),
            );
        }
        response
    }
}

impl From<UsageError> for OpenAiError {
    fn from(error: UsageError) -> OpenAiError {
        match error {
            UsageError::Days(_) => OpenAiError::invalid("invalid_days", Some("days"), error),
            UsageError::Store(_) => {
                OpenAiError::api_error(StatusCode::SERVICE_UNAVAILABLE, "store_unavailable", error)
            }
        }
    }
}

/// The status and code of a refused key or key request.
fn key_refusal(key: &KeyError) -> (StatusCode, &'static str) {
    match key {
        KeyError::Missing => (StatusCode::UNAUTHORIZED, "missing_api_key"),
        KeyError::Invalid => (StatusCode::UNAUTHORIZED, "invalid_api_key"),
        KeyError::Expired { .. } => (StatusCode::UNAUTHORIZED, "expired_api_key"),
        KeyError::Scope { .. } => (StatusCode::FORBIDDEN, "insufficient_scope"),
        KeyError::Unsigned { .. } => (StatusCode::UNAUTHORIZED, "signature_required"),
        KeyError::StaleSignature { .. } => (StatusCode::UNAUTHORIZED, "signature_expired"),
        KeyError::BadSignature(_) => (StatusCode::UNAUTHORIZED, "invalid_signature"),
        KeyError::NotPayers { .. } => (StatusCode::FORBIDDEN, "not_your_account"),
        KeyError::SignatureReused => (StatusCode::CONFLICT, "signature_reused"),
    }
}

impl From<KeyError> for OpenAiError {
    fn from(key: KeyError) -> OpenAiError {
        let (status, code) = key_refusal(&key);
        OpenAiError::invalid(code, None, key).with_status(status)
    }
}

impl From<AuthError> for OpenAiError {
    fn from(error: AuthError) -> OpenAiError {
        match error {
            AuthError::Key(key) => key.into(),
            AuthError::Session(SessionError::Store(_)) => OpenAiError::api_error(
                StatusCode::SERVICE_UNAVAILABLE,
                "storage_unavailable",
                error,
            ),
            _ if error.is_unauthenticated() => OpenAiError::invalid("unauthenticated", None, error)
                .with_status(StatusCode::UNAUTHORIZED),
            _ => OpenAiError::invalid("forbidden", None, error).with_status(StatusCode::FORBIDDEN),
        }
    }
}

impl From<GatewayError> for OpenAiError {
    fn from(error: GatewayError) -> OpenAiError {
        let message = error.to_string();
        match error {
            GatewayError::Key(key) => key.into(),
            GatewayError::BadRequest(_) => OpenAiError::invalid("invalid_request", None, message),
            GatewayError::BadParam { param, .. } => {
                OpenAiError::invalid("invalid_value", Some(&param), message)
            }
            GatewayError::UnknownModel(_) => {
                OpenAiError::invalid("model_not_found", Some("model"), message)
                    .with_status(StatusCode::NOT_FOUND)
            }
            GatewayError::NotServed(_) => {
                OpenAiError::invalid("model_not_served", Some("model"), message)
            }
            GatewayError::InsufficientQuota { .. } | GatewayError::ChatReserveTooLarge { .. } => {
                OpenAiError {
                    status: StatusCode::TOO_MANY_REQUESTS,
                    kind: "insufficient_quota",
                    code: "insufficient_quota",
                    param: None,
                    message,
                }
            }
            GatewayError::NotValidatorsSignature { .. } => {
                OpenAiError::invalid("not_your_account", Some("signature"), message)
                    .with_status(StatusCode::FORBIDDEN)
            }
            GatewayError::Upstream { .. } => {
                OpenAiError::api_error(StatusCode::BAD_GATEWAY, "upstream_error", message)
            }
            GatewayError::Refused(_) => {
                OpenAiError::invalid("refused", None, message).with_status(StatusCode::CONFLICT)
            }
            GatewayError::ChargeRefused(_) => OpenAiError::api_error(
                StatusCode::INTERNAL_SERVER_ERROR,
                "refused_internally",
                message,
            ),
            GatewayError::Internal(_) => {
                OpenAiError::api_error(StatusCode::INTERNAL_SERVER_ERROR, "internal", message)
            }
            GatewayError::Store(_) => OpenAiError::api_error(
                StatusCode::SERVICE_UNAVAILABLE,
                "storage_unavailable",
                message,
            ),
            GatewayError::Corrupt(_) => {
                OpenAiError::api_error(StatusCode::INTERNAL_SERVER_ERROR, "corrupt_record", message)
            }
        }
    }
}

impl From<KeysError> for OpenAiError {
    fn from(error: KeysError) -> OpenAiError {
        let message = error.to_string();
        match error {
            KeysError::Key(key) => key.into(),
            KeysError::BadParam { param, .. } => {
                OpenAiError::invalid("invalid_value", Some(param), message)
            }
            KeysError::UnknownKey { .. } => {
                OpenAiError::invalid("unknown_key", Some("id"), message)
                    .with_status(StatusCode::NOT_FOUND)
            }
            KeysError::Refused(_) => OpenAiError::api_error(
                StatusCode::INTERNAL_SERVER_ERROR,
                "refused_internally",
                message,
            ),
            KeysError::Store(_) => OpenAiError::api_error(
                StatusCode::SERVICE_UNAVAILABLE,
                "storage_unavailable",
                message,
            ),
            KeysError::Corrupt(_) => {
                OpenAiError::api_error(StatusCode::INTERNAL_SERVER_ERROR, "corrupt_record", message)
            }
        }
    }
}

/// A request body as `T`, or OpenAI's error shape saying what the body lacks.
pub fn parse<T: serde::de::DeserializeOwned>(body: &[u8]) -> Result<T, OpenAiError> {
    serde_json::from_slice(body).map_err(|e| {
        OpenAiError::invalid(
            "invalid_json",
            None,
            format!("the request body is not what this endpoint takes: {e}"),
        )
    })
}

/// Runs blocking gateway work (which waits for durable storage) off the async threads.
pub async fn blocking<T: Send + 'static, E: Into<OpenAiError> + Send + 'static>(
    work: impl FnOnce() -> Result<T, E> + Send + 'static,
) -> Result<T, OpenAiError> {
    tokio::task::spawn_blocking(work)
        .await
        .map_err(|e| {
            OpenAiError::api_error(
                StatusCode::INTERNAL_SERVER_ERROR,
                "internal",
                format!("the request failed inside the node: {e}"),
            )
        })?
        .map_err(Into::into)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A charge the economy refuses after the gateway priced and held it, or a task of the
    /// node that failed, is the node's fault: a 500 that says so, never the 409 "refused" that
    /// told a caller to change a request that was fine.
    #[test]
    fn a_refused_charge_or_a_failed_task_is_a_500() {
        for fault in [
            GatewayError::ChargeRefused("overdrawn".into()),
            GatewayError::Internal("the charge's task failed: panicked".into()),
        ] {
            let answer = OpenAiError::from(fault);
            assert_eq!(answer.status, StatusCode::INTERNAL_SERVER_ERROR);
            assert_eq!(answer.kind, "api_error");
        }
        let key = OpenAiError::from(KeysError::Refused("a duplicate key".into()));
        assert_eq!(key.status, StatusCode::INTERNAL_SERVER_ERROR);
        assert!(key.message.contains("fault in the node"), "{}", key.message);
    }
}
