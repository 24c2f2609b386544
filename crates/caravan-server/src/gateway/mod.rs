//! The gateway on HTTP, in OpenAI's wire format, over `caravan-node`'s gateway and key services.

pub mod routes;
pub mod wire;
