//! Operator work a node's operators do over HTTP (as `caravan` does on the command line):
//! registering the tokens payments may be made in, closing epochs while the node serves,
//! managing the chains it settles on and posting an epoch's root on one.

use caravan_core::epoch::EpochBundle;
use caravan_core::{Address, EpochOutcome, Event, Token};
use caravan_store::JournalError;

use crate::Node;
use crate::chains::PayoutChain;
use crate::settlement::{ChainsError, PostOutcome, RpcConfig};

/// Why operator work was refused.
#[derive(Debug, thiserror::Error)]
pub enum OperatorError {
    #[error("the economy refused it: {0}")]
    Refused(String),
    #[error("storage is unavailable; nothing changed, retry: {0}")]
    Store(#[from] JournalError),
    #[error(
        "this node keeps no chain configuration (its store is a database, not a data directory); it settles on its home chain only"
    )]
    NoChains,
    #[error("epoch {0} is not closed; close it first (POST /v1/epochs, or `caravan epoch close`)")]
    NotClosed(u64),
    #[error(transparent)]
    Chain(#[from] ChainsError),
}

impl Node {
    /// Registers an ERC-20 token payments may be made in. Blocking: waits until it is durable.
    pub fn register_token(&self, token: Token) -> Result<Token, OperatorError> {
        let mut submitted = self
            .journal()
            .submit(vec![Event::TokenRegistered(token.clone())])?;
        if let Some((_, why)) = submitted.refused.pop() {
            return Err(OperatorError::Refused(why.to_string()));
        }
        Ok(token)
    }

    /// Closes the current epoch: royalties propagate through the lineage and the cumulative
    /// settlement root is recorded, with the epoch's bundle. Calls and judgments wait while it
    /// runs (one pass over assets, edges and members, not over calls).
    /// The earnings pages index the new bundle while it is at hand, so nobody waits for it to
    /// be read back.
    pub fn close_epoch(&self) -> Result<(EpochOutcome, EpochBundle), OperatorError> {
        let (outcome, bundle) = self.journal().close_epoch().map_err(|error| match error {
            JournalError::Event(why) => OperatorError::Refused(why.to_string()),
            other => OperatorError::Store(other),
        })?;
        self.earnings().remember(&bundle);
        Ok((outcome, bundle))
    }

    fn chains(&self) -> Result<&crate::settlement::Chains, OperatorError> {
        self.settlement()
            .map(|chains| chains.as_ref())
            .ok_or(OperatorError::NoChains)
    }

    /// Tells the desk and sign-in about the chains as they now are.
    fn refresh_chains(&self) -> Result<(), OperatorError> {
        let directory = self.chains()?.directory()?;
        self.sessions()
            .set_chain_ids(directory.chains().map(|chain| chain.chain_id).collect());
        self.desk().set_chains(directory);
        Ok(())
    }

    /// Adds a JSON-RPC chain (see [`crate::settlement::Chains::add`]); accounts may choose it
    /// and sign in on it at once. Returns it and the account the node signs with there.
    pub fn add_chain(
        &self,
        name: &str,
        config: RpcConfig,
    ) -> Result<(PayoutChain, Address), OperatorError> {
        let signer = self.chains()?.add(name, config)?;
        self.refresh_chains()?;
        let chain = self
            .desk()
            .chains()
            .by_name(name)
            .map_err(|why| OperatorError::Chain(ChainsError::Unknown(why)))?
            .clone();
        Ok((chain, signer))
    }

    /// Makes `name` the home chain (see [`crate::settlement::Chains::set_home`]).
    pub fn set_home_chain(&self, name: &str) -> Result<PayoutChain, OperatorError> {
        let economy = self.journal().read(|j| j.economy().clone());
        let latest = match economy.next_epoch() - 1 {
            0 => None,
            epoch => self.journal().bundle(epoch)?,
        };
        let home = self.chains()?.set_home(name, &economy, latest.as_ref())?;
        self.refresh_chains()?;
        Ok(home)
    }

    /// Posts closed epoch `epoch`'s root on the chain named `chain` (home when `None`), as
    /// [`crate::settlement::Chains::post`] does: the store is read first, and calls and
    /// judgments go on while the chain is waited for.
    pub fn post_epoch(
        &self,
        epoch: u64,
        chain: Option<&str>,
    ) -> Result<PostOutcome, OperatorError> {
        let chains = self.chains()?;
        let name = match chain {
            Some(name) => name.to_owned(),
            None => self
                .desk()
                .chains()
                .home()
                .map(|home| home.name.clone())
                .ok_or(OperatorError::NoChains)?,
        };
        let current = self
            .journal()
            .bundle(epoch)?
            .ok_or(OperatorError::NotClosed(epoch))?;
        let previous = match epoch {
            1 => None,
            n => self.journal().bundle(n - 1)?,
        };
        Ok(chains.post(&name, 0, &current, previous.as_ref(), self.funding_limits())?)
    }
}
