//! Who may call each route, enforced before its handler runs.
//!
//! Every route is declared with an [`Access`] in [`crate::routes`]; the router wraps each in a
//! layer that authenticates the caller as that access demands and hands the handler the
//! [`Caller`] (as a request extension), so a handler cannot forget to check, and a route cannot
//! be added without saying who may call it. Credentials come from the session cookie or the
//! `Authorization` header, never from a body or a query.
//!
//! A state-changing request authenticated by a session cookie must come from the node's own
//! origin when the browser says where it comes from (`Origin`), beside the cookie's
//! `SameSite=Lax`: a page elsewhere cannot act with a signed-in person's session.

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use caravan_node::Node;
use caravan_node::auth::{AuthError, Caller, Credentials, Via};
use caravan_node::keys::Scope;

use crate::error::ApiError;
use crate::gateway::error::OpenAiError;

/// The session cookie's name.
pub const SESSION_COOKIE: &str = "caravan_session";

/// Who may call a route.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Access {
    /// Anyone: public data (projects, epochs and proofs, chains), and the doors in (sign-in).
    Public,
    /// Whoever sends a wallet's signature over the request itself (EIP-712): API key
    /// management and validators' attestations. The service checks it; no session or key.
    Signed,
    /// A signed-in account (session), or one of its API keys with this scope; the handler acts
    /// for that account only.
    Account(Scope),
    /// An API key with this scope: the OpenAI-compatible gateway, called by programs.
    Key(Scope),
    /// A signed-in account's session (what only the wallet's owner at a browser does).
    Session,
    /// The session of an account the node runs with `--operator`.
    Operator,
}

/// Which error shape a route answers in: the task API's or OpenAI's.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Shape {
    Api,
    OpenAi,
}

/// A route as the table in [`crate::routes`] declares it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RouteSpec {
    /// Lower case, as the API document writes methods.
    pub method: &'static str,
    pub path: &'static str,
    pub access: Access,
    pub shape: Shape,
}

/// A route's access rule, enforced by [`enforce`].
#[derive(Clone)]
pub struct Guard {
    pub node: Arc<Node>,
    pub access: Access,
    pub shape: Shape,
}

/// The credentials `headers` carry: the session cookie and the `Authorization` header.
pub fn credentials(headers: &HeaderMap) -> Credentials<'_> {
    Credentials {
        session: session_cookie(headers),
        authorization: headers
            .get(header::AUTHORIZATION)
            .and_then(|value| value.to_str().ok()),
    }
}

/// The session cookie's value, if the request carries one.
pub fn session_cookie(headers: &HeaderMap) -> Option<&str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|cookies| cookies.split(';'))
        .filter_map(|cookie| cookie.trim().split_once('='))
        .find(|(name, _)| *name == SESSION_COOKIE)
        .map(|(_, value)| value)
}

/// The `Set-Cookie` value that gives a browser its session: HttpOnly (no script reads it),
/// SameSite=Lax, for the whole site, until the session expires, and Secure when the node is
/// reached over https.
pub fn session_cookie_header(secret: &str, max_age_s: u64, secure: bool) -> HeaderValue {
    let secure = if secure { "; Secure" } else { "" };
    HeaderValue::try_from(format!(
        "{SESSION_COOKIE}={secret}; Path=/; HttpOnly; SameSite=Lax; Max-Age={max_age_s}{secure}"
    ))
    .expect("a session id is a valid header value")
}

/// The `Set-Cookie` value that removes the session cookie.
pub fn cleared_cookie_header(secure: bool) -> HeaderValue {
    session_cookie_header("", 0, secure)
}

fn refuse(shape: Shape, error: AuthError) -> Response {
    match shape {
        Shape::Api => ApiError::from(error).into_response(),
        Shape::OpenAi => OpenAiError::from(error).into_response(),
    }
}

/// Authenticates the caller as the route's access demands, and hands the handler the
/// [`Caller`]; refuses with 401 (no or bad credentials) or 403 (known, but not allowed).
pub async fn enforce(State(guard): State<Guard>, mut request: Request, next: Next) -> Response {
    let credentials = credentials(request.headers());
    let caller = match guard.access {
        Access::Public | Access::Signed => None,
        Access::Account(scope) => Some(guard.node.authenticate(credentials, scope)),
        Access::Key(scope) => Some(match credentials.authorization {
            Some(_) => guard.node.authenticate(credentials, scope),
            None => Err(AuthError::Key(caravan_node::keys::KeyError::Missing)),
        }),
        Access::Session => Some(guard.node.authenticate_session(credentials)),
        Access::Operator => Some(guard.node.authenticate_operator(credentials)),
    };
    if let Some(caller) = caller {
        let caller = match caller {
            Ok(caller) => caller,
            Err(error) => return refuse(guard.shape, error),
        };
        if matches!(caller.via, Via::Session { .. })
            && !matches!(*request.method(), Method::GET | Method::HEAD)
            && let Some(origin) = request.headers().get(header::ORIGIN)
        {
            let ours = guard.node.sessions().origin().to_string();
            if origin.to_str().ok() != Some(ours.as_str()) {
                return refuse(
                    guard.shape,
                    AuthError::CrossSite {
                        origin: String::from_utf8_lossy(origin.as_bytes()).into_owned(),
                        ours,
                    },
                );
            }
        }
        let account = caller.account;
        request.extensions_mut().insert::<Caller>(caller);
        let mut response = next.run(request).await;
        response.extensions_mut().insert(Acted(account));
        return response;
    }
    next.run(request).await
}

/// The account a request acted as, on its response (for the access log).
#[derive(Clone, Copy, Debug)]
pub struct Acted(pub caravan_core::Address);
