//! What the node's settlement tests share: a store started with the development token, and the
//! failures a round of the rhythm reported.

#![allow(dead_code)]

use caravan_chain::settlement::DEV_TOKEN;
use caravan_core::{Address, Event, Genesis, Ppm, Token};
use caravan_node::rhythm::Beat;
use caravan_store::{Journal, Location};

pub fn dev_token() -> Address {
    Address(DEV_TOKEN.into_array())
}

/// The store in `dir`. Opened the first time (an empty log), it is started: its genesis, the
/// development token (as "USDC") and `more` events after them; opened again, it is as it was.
pub fn started_store(dir: &std::path::Path, more: Vec<Event>) -> Journal {
    let mut journal = Journal::open(Location::DataDir(dir.to_owned()), &mut |_, _| {}).unwrap();
    if journal.economy().head().next_seq > 0 {
        return journal;
    }
    let mut events = vec![
        Event::Genesis(Genesis {
            treasury: Address::from_label("treasury"),
            protocol_fee: Ppm::ZERO,
        }),
        Event::TokenRegistered(Token {
            address: dev_token(),
            symbol: "USDC".into(),
            decimals: 6,
        }),
    ];
    events.extend(more);
    journal.submit(events).unwrap();
    journal
}

/// `payer` deposits `amount` of `token` (in the log) and withdraws it all: the next root owes it
/// that much.
pub fn withdrawal(payer: Address, token: Address, amount: u128) -> Vec<Event> {
    vec![
        Event::Deposited {
            payer,
            token,
            amount,
        },
        Event::Withdrawn {
            account: payer,
            token,
            amount,
        },
    ]
}

/// Each failed step of a round, with its cause.
pub fn failures(beats: &[Beat]) -> Vec<String> {
    beats
        .iter()
        .filter_map(|beat| match beat {
            Beat::Failed { step, why } => Some(format!("{step}: {why}")),
            _ => None,
        })
        .collect()
}
