//! Settlement on EVM chains: the compiled contracts' bindings and an embedded, in-process EVM
//! (revm) that runs them with nothing installed.

pub mod anvil;
pub mod chain;
pub mod contracts;
pub mod embedded;
pub mod persistent;
pub mod rpc;
pub mod settlement;
