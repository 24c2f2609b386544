//! `caravan serve`: the node's HTTP API on the store named by the global options.

use std::net::SocketAddr;
use std::sync::Arc;

use caravan_server::api::router;
use caravan_server::desk::Desk;
use clap::Args;

use crate::StoreArgs;
use crate::commands::ensure_genesis;
use crate::present::open_journal;

#[derive(Args)]
pub struct ServeArgs {
    /// Address and port to listen on.
    #[arg(long, default_value = "127.0.0.1:8080", env = "CARAVAN_LISTEN")]
    listen: SocketAddr,
}

pub fn run(store: &StoreArgs, args: ServeArgs) -> Result<(), String> {
    let mut journal = open_journal(store)?;
    ensure_genesis(&mut journal)?;
    let chains = crate::commands::directory(store)?;
    let desk = Arc::new(
        Desk::open(journal)
            .map_err(|e| e.to_string())?
            .with_chains(chains),
    );
    let runtime = tokio::runtime::Runtime::new()
        .map_err(|e| format!("cannot start the async runtime: {e}"))?;
    runtime.block_on(async move {
        let listener = tokio::net::TcpListener::bind(args.listen)
            .await
            .map_err(|e| format!("cannot listen on {}: {e}", args.listen))?;
        let bound = listener
            .local_addr()
            .map_err(|e| format!("cannot read the bound address: {e}"))?;
        println!(
            "caravan listening on http://{bound} (API document: http://{bound}/v1/openapi.json)"
        );
        axum::serve(listener, router(desk))
            .with_graceful_shutdown(async {
                let _ = tokio::signal::ctrl_c().await;
            })
            .await
            .map_err(|e| format!("the server stopped: {e}"))
    })
}
