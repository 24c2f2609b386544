//! What every page shares: who is looking (the session cookie), the CSRF token their forms
//! carry, the page chrome, and pages for the errors people meet.
//!
//! A page needs a session the way an API route does, but says so differently: a browser that
//! has none is sent to the sign-in page (and back afterwards), one whose session ended is told
//! so, and a script of the page's own (which sends the CSRF token) gets a JSON error it can
//! show beside the work it keeps.

use std::sync::Arc;

use askama::Template;
use axum::extract::{FromRequestParts, OptionalFromRequestParts};
use axum::http::request::Parts;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{Html, IntoResponse, Redirect, Response};
use caravan_core::Address;
use caravan_core::hash::{hex_lower, keccak256_parts};
use caravan_node::Node;
use caravan_node::sessions::SessionError;

use crate::access::{cleared_cookie_header, session_cookie};
use crate::error::ApiError;

/// The header the pages' scripts send their CSRF token in.
pub const CSRF_HEADER: &str = "x-csrf-token";
const CSRF_DOMAIN: &[u8] = b"caravan/csrf/v1";

/// The CSRF token of the session whose secret id is `secret`: derived from it, so it needs no
/// storage, differs per session, and cannot be made without the cookie no script can read.
pub fn csrf_token(secret: &str) -> String {
    hex_lower(&keccak256_parts(&[CSRF_DOMAIN, secret.as_bytes()]).0[..16])
}

/// A signed-in person looking at a page.
#[derive(Clone, Debug)]
pub struct Viewer {
    pub account: Address,
    pub expires_ms: u64,
    /// What their forms and scripts send back with every change.
    pub csrf: String,
    pub operator: bool,
}

impl Viewer {
    /// Refuses a change whose token is not this session's (a form or script of another site).
    pub fn check_csrf(&self, token: Option<&str>) -> Result<(), PageError> {
        match token {
            Some(token) if constant_time_eq(token.as_bytes(), self.csrf.as_bytes()) => Ok(()),
            _ => Err(PageError::new(
                StatusCode::FORBIDDEN,
                "This form is out of date or came from another site. Reload the page and try again.",
            )),
        }
    }

    /// [`Viewer::check_csrf`] with the token from the pages' scripts' header.
    pub fn check_csrf_header(&self, headers: &HeaderMap) -> Result<(), PageError> {
        self.check_csrf(headers.get(CSRF_HEADER).and_then(|v| v.to_str().ok()))
    }
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// Why a page could not be shown to whoever asked.
pub enum NotSignedIn {
    /// To the sign-in page, then back to `next`; `ended` when a session cookie was sent but its
    /// session is over (expired or signed out elsewhere).
    SignIn {
        next: String,
        ended: bool,
        secure: bool,
    },
    /// A script of the pages asked: it gets JSON it can show without losing what was typed.
    Script { ended: bool },
    /// The store could not be asked.
    Unavailable(String),
}

impl IntoResponse for NotSignedIn {
    fn into_response(self) -> Response {
        match self {
            NotSignedIn::SignIn {
                next,
                ended,
                secure,
            } => {
                let mut target = format!("/sign-in?next={}", url_encode(&next));
                if ended {
                    target.push_str("&ended=1");
                }
                let mut response = Redirect::to(&target).into_response();
                if ended {
                    response
                        .headers_mut()
                        .insert(header::SET_COOKIE, cleared_cookie_header(secure));
                }
                response
            }
            NotSignedIn::Script { ended } => ApiError::new(
                StatusCode::UNAUTHORIZED,
                "session_ended",
                if ended {
                    "your session has ended: sign in again in another tab, then submit once more (what you entered is kept here)"
                } else {
                    "you are not signed in: sign in in another tab, then submit once more (what you entered is kept here)"
                },
            )
            .into_response(),
            NotSignedIn::Unavailable(why) => {
                PageError::new(StatusCode::SERVICE_UNAVAILABLE, why).into_response()
            }
        }
    }
}

/// Who the request's session cookie belongs to: `None` without a cookie or with one whose
/// session is over (`ended` says which), an error when the store could not be asked.
async fn look_up(parts: &Parts, node: &Arc<Node>) -> Result<Result<Viewer, bool>, String> {
    let Some(secret) = session_cookie(&parts.headers).filter(|s| !s.is_empty()) else {
        return Ok(Err(false));
    };
    let secret = secret.to_owned();
    let sessions = Arc::clone(node.sessions());
    let checked = {
        let secret = secret.clone();
        tokio::task::spawn_blocking(move || sessions.authenticate(&secret)).await
    };
    match checked {
        Ok(Ok(session)) => Ok(Ok(Viewer {
            account: session.account,
            expires_ms: session.expires_ms,
            csrf: csrf_token(&secret),
            operator: node.is_operator(&session.account),
        })),
        Ok(Err(SessionError::Unknown)) => Ok(Err(true)),
        Ok(Err(error)) => Err(format!(
            "The node could not check your session: {error}. Try again in a moment."
        )),
        Err(error) => Err(format!(
            "The node failed while checking your session: {error}."
        )),
    }
}

impl FromRequestParts<Arc<Node>> for Viewer {
    type Rejection = NotSignedIn;

    async fn from_request_parts(
        parts: &mut Parts,
        node: &Arc<Node>,
    ) -> Result<Viewer, NotSignedIn> {
        match look_up(parts, node).await {
            Ok(Ok(viewer)) => Ok(viewer),
            Ok(Err(ended)) if parts.headers.contains_key(CSRF_HEADER) => {
                Err(NotSignedIn::Script { ended })
            }
            Ok(Err(ended)) => Err(NotSignedIn::SignIn {
                next: parts
                    .uri
                    .path_and_query()
                    .map_or("/", |path| path.as_str())
                    .to_owned(),
                ended,
                secure: node.sessions().origin().is_https(),
            }),
            Err(why) => Err(NotSignedIn::Unavailable(why)),
        }
    }
}

impl OptionalFromRequestParts<Arc<Node>> for Viewer {
    type Rejection = NotSignedIn;

    async fn from_request_parts(
        parts: &mut Parts,
        node: &Arc<Node>,
    ) -> Result<Option<Viewer>, NotSignedIn> {
        match look_up(parts, node).await {
            Ok(found) => Ok(found.ok()),
            Err(why) => Err(NotSignedIn::Unavailable(why)),
        }
    }
}

/// What the chrome of every page shows of the viewer.
pub struct Chrome {
    /// The signed-in account, if any.
    pub account: Option<String>,
    /// The account shortened for the header (`0x1234…abcd`).
    pub short: String,
    pub csrf: String,
    /// Which part of the site the page belongs to, for the navigation's `aria-current`.
    pub section: &'static str,
}

impl Chrome {
    pub fn of(viewer: &Viewer, section: &'static str) -> Chrome {
        let account = viewer.account.to_checksum();
        Chrome {
            short: short_address(&account),
            account: Some(account),
            csrf: viewer.csrf.clone(),
            section,
        }
    }

    pub fn anonymous(section: &'static str) -> Chrome {
        Chrome {
            account: None,
            short: String::new(),
            csrf: String::new(),
            section,
        }
    }
}

/// `0x1234…abcd`.
pub fn short_address(address: &str) -> String {
    if address.len() < 12 {
        return address.to_owned();
    }
    format!("{}…{}", &address[..6], &address[address.len() - 4..])
}

/// A page rendered, or a 500 page that says the template failed.
pub fn render(page: &impl Template) -> Response {
    match page.render() {
        Ok(html) => Html(html).into_response(),
        Err(error) => PageError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("The page could not be drawn: {error}."),
        )
        .into_response(),
    }
}

/// A page that says what went wrong and what to do, with the right status.
#[derive(Debug)]
pub struct PageError {
    pub status: StatusCode,
    pub message: String,
}

#[derive(Template)]
#[template(path = "error.html")]
struct ErrorPage<'a> {
    chrome: Chrome,
    title: &'a str,
    message: &'a str,
}

impl PageError {
    pub fn new(status: StatusCode, message: impl ToString) -> PageError {
        PageError {
            status,
            message: message.to_string(),
        }
    }
}

impl From<ApiError> for PageError {
    fn from(error: ApiError) -> PageError {
        PageError::new(error.status, error.message)
    }
}

impl IntoResponse for PageError {
    fn into_response(self) -> Response {
        let title = if self.status.is_server_error() {
            "Something went wrong on this node"
        } else if self.status == StatusCode::NOT_FOUND {
            "Not found"
        } else {
            "That did not work"
        };
        let page = ErrorPage {
            chrome: Chrome::anonymous(""),
            title,
            message: &self.message,
        };
        let html = page
            .render()
            .unwrap_or_else(|_| format!("<!doctype html><title>{title}</title>"));
        (self.status, Html(html)).into_response()
    }
}

/// Percent-encodes `text` for a query parameter.
pub fn url_encode(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' | b'/' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// A local path to return to after signing in: only paths on this site, so a link cannot send
/// someone elsewhere.
pub fn safe_next(next: Option<&str>) -> String {
    match next {
        Some(path) if path.starts_with('/') && !path.starts_with("//") && !path.contains('\\') => {
            path.to_owned()
        }
        _ => "/tasks".to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_csrf_token_differs_per_session_and_is_checked_exactly() {
        let a = csrf_token("crs_a");
        assert_ne!(a, csrf_token("crs_b"));
        assert_eq!(a.len(), 32);
        let viewer = Viewer {
            account: Address::from_label("someone"),
            expires_ms: 0,
            csrf: a.clone(),
            operator: false,
        };
        assert!(viewer.check_csrf(Some(&a)).is_ok());
        assert!(viewer.check_csrf(Some(&csrf_token("crs_b"))).is_err());
        assert!(viewer.check_csrf(None).is_err());
    }

    #[test]
    fn only_local_paths_are_returned_to_after_signing_in() {
        assert_eq!(
            safe_next(Some("/projects/0x1/label")),
            "/projects/0x1/label"
        );
        assert_eq!(safe_next(Some("//evil.example/")), "/tasks");
        assert_eq!(safe_next(Some("https://evil.example/")), "/tasks");
        assert_eq!(safe_next(Some("/\\evil.example")), "/tasks");
        assert_eq!(safe_next(None), "/tasks");
    }
}
