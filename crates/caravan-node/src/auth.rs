//! Who is calling. Every request that acts for an account is authenticated as that account — by
//! a session its wallet opened, or by an API key the account issued — and acts only as it: the
//! account comes from the credentials, never from a body or a query. A request that names
//! another account is refused and told what the caller may do.

use std::fmt;

use caravan_core::Address;

use crate::keys::{ApiKey, KeyError, Scope};
use crate::sessions::SessionError;

/// The credentials a request carries, as the transport found them.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Credentials<'a> {
    /// A session's secret id (the session cookie).
    pub session: Option<&'a str>,
    /// An `Authorization` header's value (`Bearer crv_…`).
    pub authorization: Option<&'a str>,
}

/// An authenticated caller.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Caller {
    pub account: Address,
    pub via: Via,
}

/// How the caller proved who it is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Via {
    /// A session its wallet opened, until `expires_ms`: the account's owner at a browser, who
    /// may do anything the account may.
    Session { expires_ms: u64 },
    /// One of the account's API keys, which may do what its scopes allow.
    Key(ApiKey),
}

/// What a caller does, to say in a refusal who may do it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Acting {
    Contributor,
    Requester,
    Reviewer,
    Account,
}

impl fmt::Display for Acting {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Acting::Contributor => "contributor",
            Acting::Requester => "requester",
            Acting::Reviewer => "reviewer",
            Acting::Account => "account",
        })
    }
}

/// Why a request may not do what it asked. None of these messages repeats a secret.
#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    #[error(
        "this needs a signed-in account: sign in with your wallet (GET /v1/auth/nonce, then POST /v1/auth/siwe), or send an API key with the {0} scope as `Authorization: Bearer crv_…`"
    )]
    Unauthenticated(Scope),
    #[error(
        "this is operator work: sign in (GET /v1/auth/nonce, then POST /v1/auth/siwe) with an account the node runs with `--operator`"
    )]
    OperatorUnauthenticated,
    #[error(
        "this needs the account's own wallet: sign in (GET /v1/auth/nonce, then POST /v1/auth/siwe); an API key cannot do it"
    )]
    SessionRequired,
    #[error(transparent)]
    Key(#[from] KeyError),
    #[error(transparent)]
    Session(#[from] SessionError),
    #[error(
        "{account} is not an operator of this node; operator work (registering tokens, closing and posting epochs, managing chains) is for the accounts the node runs with `--operator`"
    )]
    NotOperator { account: Address },
    #[error(
        "a request from {origin} may not act with a session of {ours}: send it from {ours}, or use an API key"
    )]
    CrossSite { origin: String, ours: String },
    #[error(
        "you are {caller}, and this request names {named} as the {acting}; you may act only as yourself: leave the {acting} out, or name {caller}"
    )]
    NotYou {
        caller: Address,
        named: Address,
        acting: Acting,
    },
}

impl AuthError {
    /// Whether the caller is not known at all (no, bad or expired credentials) rather than
    /// known and refused: the difference between HTTP 401 and 403.
    pub fn is_unauthenticated(&self) -> bool {
        match self {
            AuthError::Unauthenticated(_)
            | AuthError::OperatorUnauthenticated
            | AuthError::SessionRequired
            | AuthError::Session(SessionError::Unknown) => true,
            AuthError::Key(key) => !matches!(key, KeyError::Scope { .. }),
            AuthError::Session(SessionError::Store(_))
            | AuthError::NotOperator { .. }
            | AuthError::CrossSite { .. }
            | AuthError::NotYou { .. } => false,
        }
    }
}

impl Caller {
    /// The account to act as `acting`: the caller's own. A request that names an account
    /// (an older client's body field) must name the caller's.
    pub fn acting_as(&self, named: Option<Address>, acting: Acting) -> Result<Address, AuthError> {
        match named {
            Some(named) if named != self.account => Err(AuthError::NotYou {
                caller: self.account,
                named,
                acting,
            }),
            _ => Ok(self.account),
        }
    }

    /// Whether the caller may do what `scope` allows: a session may do anything its account
    /// may, a key what its scopes list.
    pub fn may(&self, scope: Scope) -> bool {
        match &self.via {
            Via::Session { .. } => true,
            Via::Key(key) => key.scopes.contains(&scope),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_caller_acts_only_as_itself() {
        let me = Address::from_label("me");
        let caller = Caller {
            account: me,
            via: Via::Session { expires_ms: 1 },
        };
        assert_eq!(caller.acting_as(None, Acting::Contributor).unwrap(), me);
        assert_eq!(caller.acting_as(Some(me), Acting::Contributor).unwrap(), me);
        let other = Address::from_label("someone else");
        let refused = caller
            .acting_as(Some(other), Acting::Requester)
            .unwrap_err();
        assert!(!refused.is_unauthenticated());
        let message = refused.to_string();
        assert!(
            message.contains(&me.to_string())
                && message.contains(&other.to_string())
                && message.contains("as the requester"),
            "{message}"
        );
    }
}
