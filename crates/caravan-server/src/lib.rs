//! The HTTP face of a caravan node: the data-task API, sign-in, settlement, operator work and the
//! OpenAI-compatible gateway, with the OpenAPI document at `/v1/openapi.json`, and the web pages
//! people use ([`web`]).
//!
//! [`routes`] lists every route with who may call it; [`access`] enforces that before a handler
//! runs. Handlers extract typed input, call one service of `caravan-node` and map its result;
//! the rules live in `caravan-node`, `caravan-tasks` and `caravan-core`.

pub mod access;
pub mod error;
pub mod gateway;
pub mod log;
pub mod openapi;
pub mod operator;
pub mod routes;
pub mod settlement;
pub mod sign_in;
pub mod tasks;
pub mod web;
pub mod withdrawals;

pub use routes::router;
