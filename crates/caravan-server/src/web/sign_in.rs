//! Signing in at a browser: with the wallet the browser has (the page's script asks it for a
//! `personal_sign` of the node's EIP-4361 message and sends it to `POST /v1/auth/siwe`), or with
//! a one-time link `caravan login --key FILE` prints for a key kept in a file; and signing out.

use std::sync::Arc;

use askama::Template;
use axum::Form;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use caravan_node::Node;
use caravan_node::sessions::siwe::SiweMessage;
use serde::Deserialize;

use super::page::{Chrome, PageError, Viewer, render, safe_next, short_address};
use crate::access::{cleared_cookie_header, session_cookie, session_cookie_header};
use crate::error::blocking;

#[derive(Deserialize)]
pub struct SignInQuery {
    next: Option<String>,
    #[serde(default)]
    ended: Option<String>,
    #[serde(default)]
    signed_out: Option<String>,
}

#[derive(Template)]
#[template(path = "sign_in.html")]
struct SignInPage {
    chrome: Chrome,
    next: String,
    notice: Option<&'static str>,
    origin: String,
}

/// The sign-in page; someone already signed in goes straight on.
pub async fn sign_in_page(
    State(node): State<Arc<Node>>,
    viewer: Option<Viewer>,
    Query(query): Query<SignInQuery>,
) -> Response {
    let next = safe_next(query.next.as_deref());
    if viewer.is_some() && query.ended.is_none() {
        return Redirect::to(&next).into_response();
    }
    let notice = if query.ended.is_some() {
        Some("Your session has ended. Sign in again to carry on where you were.")
    } else if query.signed_out.is_some() {
        Some("You are signed out.")
    } else {
        None
    };
    render(&SignInPage {
        chrome: Chrome::anonymous("sign-in"),
        next,
        notice,
        origin: node.sessions().origin().to_string(),
    })
}

#[derive(Deserialize)]
pub struct SignInLink {
    message: String,
    signature: String,
}

#[derive(Template)]
#[template(path = "sign_in_link.html")]
struct LinkPage {
    chrome: Chrome,
    account: String,
    short: String,
    message: String,
    signature: String,
}

/// What a `caravan login` link opens: the account it signs in as and a button, so a link
/// previewer that fetches the page does not use the link up.
pub async fn link_page(Query(link): Query<SignInLink>) -> Result<Response, PageError> {
    let parsed = SiweMessage::parse(&link.message).map_err(|error| {
        PageError::new(
            StatusCode::BAD_REQUEST,
            format!(
                "This sign-in link is damaged ({error}). Make a new one with `caravan login --key FILE`."
            ),
        )
    })?;
    let account = parsed.address.to_checksum();
    Ok(render(&LinkPage {
        chrome: Chrome::anonymous("sign-in"),
        short: short_address(&account),
        account,
        message: link.message,
        signature: link.signature,
    }))
}

/// Uses a sign-in link: checks the signed message like any wallet's and opens the session.
/// The form must come from this node's own pages (its `Origin`), so another site cannot sign a
/// visitor in as someone else.
pub async fn use_link(
    State(node): State<Arc<Node>>,
    headers: HeaderMap,
    Form(link): Form<SignInLink>,
) -> Result<Response, PageError> {
    let ours = node.sessions().origin().to_string();
    if let Some(origin) = headers.get(header::ORIGIN)
        && origin.to_str().ok() != Some(ours.as_str())
    {
        return Err(PageError::new(
            StatusCode::FORBIDDEN,
            "This sign-in form was sent from another site. Open the link itself instead.",
        ));
    }
    // A browser submits a form's line breaks as CR LF; the message was signed with LF alone.
    let message = link.message.replace("\r\n", "\n");
    let sessions = Arc::clone(node.sessions());
    let opened = blocking(move || sessions.sign_in(&message, &link.signature))
        .await
        .map_err(|error| {
            PageError::new(
                error.status,
                format!(
                    "This sign-in link does not work: {}. Links work once and for five minutes; make a new one with `caravan login --key FILE`.",
                    error.message
                ),
            )
        })?;
    let max_age_s = opened
        .session
        .expires_ms
        .saturating_sub(caravan_store::now_ms())
        / 1000;
    let secure = node.sessions().origin().is_https();
    let mut response = Redirect::to("/tasks").into_response();
    response.headers_mut().insert(
        header::SET_COOKIE,
        session_cookie_header(&opened.secret, max_age_s, secure),
    );
    Ok(response)
}

#[derive(Deserialize)]
pub struct SignOutForm {
    csrf: String,
}

/// Ends the session (here and in the store) and clears its cookie.
pub async fn sign_out(
    State(node): State<Arc<Node>>,
    viewer: Viewer,
    headers: HeaderMap,
    Form(form): Form<SignOutForm>,
) -> Result<Response, PageError> {
    viewer.check_csrf(Some(&form.csrf))?;
    let secret = session_cookie(&headers).unwrap_or_default().to_owned();
    let sessions = Arc::clone(node.sessions());
    blocking(move || sessions.sign_out(&secret)).await?;
    let mut response = Redirect::to("/sign-in?signed_out=1").into_response();
    response.headers_mut().insert(
        header::SET_COOKIE,
        cleared_cookie_header(node.sessions().origin().is_https()),
    );
    Ok(response)
}
