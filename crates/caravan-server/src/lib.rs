//! The HTTP face of a caravan node.
//!
//! [`desk::Desk`] keeps the data-task boards in step with the durable log; [`api`] exposes it as
//! a JSON API whose OpenAPI document the server serves at `/v1/openapi.json`. Handlers extract
//! typed input, call one desk method and map its result; the rules live in `caravan-tasks` and
//! `caravan-core`.

pub mod api;
pub mod chains;
pub mod desk;
pub mod gateway;
pub mod openapi;
