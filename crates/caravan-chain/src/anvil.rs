//! A local anvil node (Foundry's development EVM, installed from npm by
//! `scripts/anvil/install.sh`) started on a free loopback port, for tests and benchmarks that
//! need a real JSON-RPC chain. It is stopped when dropped.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::chain::ChainFault;
use crate::rpc::RpcChain;

/// anvil's first development account's key: public, printed by anvil itself at start-up.
pub const ANVIL_DEV_KEY: &str =
    "0xac0974bec39a17e36ba4a6b4d238ff944bacb478cbed5efcae784d7bf4f2ff80";
/// The chain id anvil serves unless told otherwise.
pub const ANVIL_CHAIN_ID: u64 = 31_337;
/// How long anvil may take to answer after it is started.
const START_TIMEOUT: Duration = Duration::from_secs(20);

/// anvil where `scripts/anvil/install.sh` installs it in this checkout, for tests. Fails the test,
/// naming the script, when it is not installed: a chain test never passes without having run
/// (`scripts/test.sh` installs it before the tests).
pub fn installed_for_tests() -> PathBuf {
    let binary = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../scripts/anvil/node_modules/@foundry-rs/anvil-linux-amd64/bin/anvil");
    assert!(
        binary.exists(),
        "anvil is not installed; run scripts/anvil/install.sh (or scripts/test.sh, which installs everything the tests need)"
    );
    binary
}

pub struct LocalAnvil {
    child: Child,
    port: u16,
    url: String,
}

impl LocalAnvil {
    /// Starts `binary` on a free port and waits until it answers.
    pub fn start(binary: &Path) -> Result<LocalAnvil, ChainFault> {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map_err(|e| ChainFault::Rpc(format!("cannot find a free loopback port: {e}")))?
            .port();
        let child = Command::new(binary)
            .args(["--port", &port.to_string(), "--silent"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| ChainFault::Rpc(format!("cannot start {}: {e}", binary.display())))?;
        let anvil = LocalAnvil {
            child,
            port,
            url: format!("http://127.0.0.1:{port}"),
        };
        let started = Instant::now();
        while let Err(e) = anvil.connect() {
            if started.elapsed() > START_TIMEOUT {
                return Err(e);
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        Ok(anvil)
    }

    pub fn url(&self) -> &str {
        &self.url
    }

    /// The loopback address anvil listens on (for a front such as a TLS proxy).
    pub fn address(&self) -> std::net::SocketAddr {
        std::net::SocketAddr::from(([127, 0, 0, 1], self.port))
    }

    /// A connection signing with the first development key.
    pub fn connect(&self) -> Result<RpcChain, ChainFault> {
        RpcChain::connect(
            &self.url,
            ANVIL_CHAIN_ID,
            ANVIL_DEV_KEY,
            reqwest::Client::new(),
        )
    }
}

impl Drop for LocalAnvil {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
