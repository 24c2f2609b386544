//! Where the desk's accounts are paid: the chain each account chooses, and its proofs to claim.

use caravan_core::{Address, Event};

use super::{Desk, DeskError};
use crate::chains::{ChainDirectory, PayoutChain};

impl Desk {
    /// The chains accounts may choose to be paid on (without them, only home).
    pub fn with_chains(self, chains: ChainDirectory) -> Desk {
        self.set_chains(chains);
        self
    }

    /// Changes the chains accounts may choose (the operator added one or moved home).
    pub fn set_chains(&self, chains: ChainDirectory) {
        *self
            .chains
            .write()
            .expect("the chains' lock is never poisoned") = chains;
    }

    /// The chains accounts may choose to be paid on, home first.
    pub fn chains(&self) -> ChainDirectory {
        self.chains
            .read()
            .expect("the chains' lock is never poisoned")
            .clone()
    }

    /// The share of the log `account` is paid from now on (see [`caravan_core::HOME_CHAIN`]) and
    /// the chain that pays it; no chain for home on a node that was given no chain directory.
    pub fn payout_chain(&self, account: &Address) -> (u64, Option<PayoutChain>) {
        let partition = self.journal.read(|j| j.economy().payout_chain(account));
        (partition, self.chains().of_partition(partition).cloned())
    }

    /// Records that `account`'s earnings from now on are paid on chain `chain_id` (0 or the
    /// home chain's id for home). Choosing the chain already chosen changes nothing. Earlier
    /// earnings stay claimable where they were.
    pub fn choose_payout_chain(
        &self,
        account: Address,
        chain_id: u64,
    ) -> Result<(u64, Option<PayoutChain>), DeskError> {
        let chains = self.chains();
        let partition = if chain_id == caravan_core::HOME_CHAIN {
            caravan_core::HOME_CHAIN
        } else {
            let chain = chains
                .by_chain_id(chain_id)
                .map_err(DeskError::UnknownChain)?;
            ChainDirectory::partition(chain)
        };
        let current = self.journal.read(|j| j.economy().payout_chain(&account));
        if current != partition {
            self.commit(
                (),
                vec![Event::PayoutChainChosen {
                    account,
                    chain_id: partition,
                }],
            )?;
        }
        Ok((partition, chains.of_partition(partition).cloned()))
    }

    /// `account`'s leaves in closed epoch `epoch`, each with its Merkle proof, per chain that
    /// pays it (home first): what its wallet submits to claim. Empty when nothing is owed.
    pub fn proofs(
        &self,
        epoch: u64,
        account: &Address,
    ) -> Result<Vec<caravan_core::ChainProofs>, DeskError> {
        let bundle = self
            .journal
            .bundle(epoch)?
            .ok_or_else(|| DeskError::CorruptRecord {
                seq: 0,
                why: format!("the bundle of closed epoch {epoch} is missing from the store"),
            })?;
        Ok(bundle.proofs_for(account))
    }
}
