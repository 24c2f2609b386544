//! Reserve before spending, settle after: the check-then-charge race that lets concurrent spenders
//! overshoot a prepaid balance cannot happen, because every call in flight holds its maximum cost
//! (and a project being posted its budget) against the account's balance until the charge or
//! escrow is applied. The gateway and the desk share one meter, so a call and a budget never
//! count the same money twice.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use caravan_core::{AccountRef, Address, Amount};
use caravan_store::SharedJournal;

/// Money held for calls in flight, per (payer, token).
#[derive(Default)]
pub struct Meter {
    held: Mutex<HashMap<(Address, Address), Amount>>,
}

/// The payer cannot cover a call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Shortfall {
    pub needed: Amount,
    /// The balance less what calls in flight hold.
    pub available: Amount,
}

/// A reservation. [`Meter::settle`] turns it into the charge; dropping it unsettled (a failed
/// call, a client that went away before anything was charged) releases the money.
pub struct Hold {
    meter: Arc<Meter>,
    key: (Address, Address),
    pub amount: Amount,
    settled: bool,
}

impl Meter {
    /// Holds `amount` of `token` from `payer`'s prepaid balance, or says how much is available.
    pub fn reserve(
        self: &Arc<Self>,
        journal: &SharedJournal,
        payer: Address,
        token: Address,
        amount: Amount,
    ) -> Result<Hold, Shortfall> {
        let mut held = self
            .held
            .lock()
            .expect("the meter's lock is never poisoned");
        let key = (payer, token);
        let balance = journal.read(|j| {
            j.economy()
                .ledger()
                .balance(&AccountRef::Payer(payer), &token)
                .available()
        });
        let in_flight = held.get(&key).copied().unwrap_or(0);
        let available = balance.saturating_sub(in_flight);
        if available < amount {
            return Err(Shortfall {
                needed: amount,
                available,
            });
        }
        *held.entry(key).or_default() += amount;
        Ok(Hold {
            meter: Arc::clone(self),
            key,
            amount,
            settled: false,
        })
    }

    /// Runs `charge` (which applies the call's charge to the economy) and releases `hold` in
    /// one step under the meter's lock, so a concurrent reservation never sees the money both
    /// charged and still held — it would wrongly refuse a call the balance can pay — nor
    /// neither. Waiting for durability happens after, outside the lock.
    pub fn settle<T>(&self, mut hold: Hold, charge: impl FnOnce() -> T) -> T {
        let mut held = self
            .held
            .lock()
            .expect("the meter's lock is never poisoned");
        let charged = charge();
        release(&mut held, &hold.key, hold.amount);
        hold.settled = true;
        charged
    }

    /// What calls in flight hold of the payer's `token`.
    pub fn held(&self, payer: &Address, token: &Address) -> Amount {
        self.reading(|in_flight| in_flight.of(payer, token))
    }

    /// Runs `read` with what calls in flight hold (per payer and token), under the meter's
    /// lock, so that no call is reserved or settled meanwhile. The locks are always taken in
    /// one order, the meter's and then the journal's (as [`Meter::reserve`] and
    /// [`Meter::settle`] take them): a reader that also reads the journal does so inside
    /// `read`, never the other way round, or a reader and a call would each wait for the
    /// other's lock for ever.
    pub fn reading<T>(&self, read: impl FnOnce(&InFlight<'_>) -> T) -> T {
        let held = self
            .held
            .lock()
            .expect("the meter's lock is never poisoned");
        read(&InFlight(&held))
    }
}

/// What calls in flight hold, while the meter's lock is held (see [`Meter::reading`]).
pub struct InFlight<'a>(&'a HashMap<(Address, Address), Amount>);

impl InFlight<'_> {
    /// What calls in flight hold of the payer's `token`.
    pub fn of(&self, payer: &Address, token: &Address) -> Amount {
        self.0.get(&(*payer, *token)).copied().unwrap_or(0)
    }
}

fn release(
    held: &mut HashMap<(Address, Address), Amount>,
    key: &(Address, Address),
    amount: Amount,
) {
    if let Some(total) = held.get_mut(key) {
        *total -= amount;
        if *total == 0 {
            held.remove(key);
        }
    }
}

impl Drop for Hold {
    fn drop(&mut self) {
        if self.settled {
            return;
        }
        let mut held = self
            .meter
            .held
            .lock()
            .expect("the meter's lock is never poisoned");
        release(&mut held, &self.key, self.amount);
    }
}
