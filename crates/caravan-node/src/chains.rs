//! The chains a node pays on, as accounts see them: each with its name, its chain id and whether
//! it is the home chain, which pays everyone who never chose another. The log records a choice
//! of the home chain as [`HOME_CHAIN`], so which chain is home is the node's configuration, fixed
//! once a home root is posted.

use caravan_core::HOME_CHAIN;
use serde::Serialize;

/// One chain a node settles on.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct PayoutChain {
    pub name: String,
    pub chain_id: u64,
    pub home: bool,
}

/// The chains a node settles on: exactly one home chain, names and chain ids each used once.
#[derive(Clone, Debug, Default)]
pub struct ChainDirectory {
    chains: Vec<PayoutChain>,
}

impl ChainDirectory {
    pub fn new(chains: Vec<PayoutChain>) -> Result<ChainDirectory, String> {
        if chains.iter().filter(|c| c.home).count() != 1 {
            return Err("exactly one chain must be the home chain".into());
        }
        for (i, chain) in chains.iter().enumerate() {
            if let Some(twin) = chains[..i]
                .iter()
                .find(|c| c.name == chain.name || c.chain_id == chain.chain_id)
            {
                return Err(format!(
                    "chains {} (chain id {}) and {} (chain id {}) clash: names and chain ids must differ",
                    twin.name, twin.chain_id, chain.name, chain.chain_id
                ));
            }
        }
        Ok(ChainDirectory { chains })
    }

    /// Every chain, home first.
    pub fn chains(&self) -> impl Iterator<Item = &PayoutChain> {
        self.chains
            .iter()
            .filter(|c| c.home)
            .chain(self.chains.iter().filter(|c| !c.home))
    }

    /// The home chain: the one that pays everyone who did not choose another.
    pub fn home(&self) -> Option<&PayoutChain> {
        self.chains.iter().find(|c| c.home)
    }

    /// What the log calls `chain`'s share of the entitlements: [`HOME_CHAIN`] for home, else
    /// its chain id.
    pub fn partition(chain: &PayoutChain) -> u64 {
        if chain.home {
            HOME_CHAIN
        } else {
            chain.chain_id
        }
    }

    /// The chain named `name`, or an error that lists the chains there are.
    pub fn by_name(&self, name: &str) -> Result<&PayoutChain, String> {
        self.chains
            .iter()
            .find(|c| c.name == name)
            .ok_or_else(|| format!("no chain is called {name:?}; {}", self.listing()))
    }

    /// The chain with `chain_id` ([`HOME_CHAIN`] meaning home), or an error that lists them.
    pub fn by_chain_id(&self, chain_id: u64) -> Result<&PayoutChain, String> {
        self.chains
            .iter()
            .find(|c| c.chain_id == chain_id || (chain_id == HOME_CHAIN && c.home))
            .ok_or_else(|| {
                format!(
                    "this node does not pay on chain id {chain_id}; {}",
                    self.listing()
                )
            })
    }

    /// The chain that pays the share the log calls `partition`, when this node has it.
    pub fn of_partition(&self, partition: u64) -> Option<&PayoutChain> {
        self.chains
            .iter()
            .find(|c| ChainDirectory::partition(c) == partition)
    }

    fn listing(&self) -> String {
        if self.chains.is_empty() {
            return "this node pays only on its home chain (chain id 0 names it)".into();
        }
        let names: Vec<String> = self
            .chains()
            .map(|c| {
                format!(
                    "{} (chain id {}{})",
                    c.name,
                    c.chain_id,
                    if c.home { ", home" } else { "" }
                )
            })
            .collect();
        format!("it pays on {}", names.join(", "))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chain(name: &str, chain_id: u64, home: bool) -> PayoutChain {
        PayoutChain {
            name: name.into(),
            chain_id,
            home,
        }
    }

    #[test]
    fn home_is_named_by_zero_and_by_its_own_id_and_clashes_are_refused() {
        let directory = ChainDirectory::new(vec![
            chain("base", 8453, false),
            chain("embedded", 6_513_010, true),
        ])
        .unwrap();
        assert_eq!(directory.chains().next().unwrap().name, "embedded");
        let home = directory.by_chain_id(HOME_CHAIN).unwrap();
        assert_eq!(ChainDirectory::partition(home), HOME_CHAIN);
        assert_eq!(directory.by_chain_id(6_513_010).unwrap(), home);
        let base = directory.by_name("base").unwrap();
        assert_eq!(ChainDirectory::partition(base), 8453);
        assert_eq!(directory.of_partition(8453), Some(base));
        let unknown = directory.by_chain_id(10).unwrap_err();
        assert!(unknown.contains("base (chain id 8453)"), "{unknown}");
        assert!(
            directory
                .by_name("optimism")
                .unwrap_err()
                .contains("embedded (chain id 6513010, home)")
        );
        assert!(ChainDirectory::new(vec![chain("a", 1, true), chain("b", 1, false)]).is_err());
        assert!(ChainDirectory::new(vec![chain("a", 1, false)]).is_err());
    }
}
