//! The gateway on HTTP, in OpenAI's wire format, over `caravan-node`'s gateway and key services:
//! errors are `{"error": {"message", "type", "param", "code"}}`, lists are
//! `{"object": "list", "data": […]}`, and keys come as `Authorization: Bearer …`, so OpenAI's own
//! clients work unchanged.

pub mod calls;
pub mod error;
pub mod keys;
pub mod models;
pub mod wire;

pub use caravan_node::gateway::answer::{
    NODE_HEADER, RECEIPT_HEADER, REPLAYED_HEADER, SIGNATURE_HEADER,
};
