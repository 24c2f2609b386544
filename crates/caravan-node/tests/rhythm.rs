//! A node keeps its rhythm: it closes an epoch when one is due and something happened, writes
//! the bundle, posts the root on the home chain (funding only within the operator's limit) and
//! activates it once its delay is over — and a round after a failure or a restart finishes what
//! was left without ever posting a root twice.

mod common;

use std::path::Path;
use std::time::Duration;

use caravan_chain::settlement::FundingLimits;
use caravan_core::epoch::EpochBundle;
use caravan_core::{Address, Event, Token};
use caravan_models::ArtifactStore;
use caravan_node::Node;
use caravan_node::gateway::receipt::NodeSigner;
use caravan_node::rhythm::{Beat, Rhythm};
use caravan_node::settlement::{Chains, EMBEDDED};
use caravan_store::{Journal, now_ms};
use common::{dev_token, failures, started_store, withdrawal};

const MINUTE: u64 = 60_000;

fn eurc() -> Token {
    Token {
        address: Address::from_label("eurc"),
        symbol: "EURC".into(),
        decimals: 6,
    }
}

/// A node settling on the embedded chain of `dir`, whose payer withdrew 2 USDC (an entitlement
/// the next root pays), posting with `funding`.
fn node(dir: &Path, funding: FundingLimits) -> Node {
    let mut started = vec![Event::TokenRegistered(eurc())];
    started.extend(withdrawal(
        Address::from_label("payer"),
        dev_token(),
        2_000_000,
    ));
    let journal = started_store(dir, started);
    let chains = Chains::new(dir.join("chains"), reqwest::Client::new());
    Node::builder(
        journal,
        ArtifactStore::new(dir.join("models")),
        NodeSigner::load_or_create(&dir.join("node.key")).unwrap(),
    )
    .settlement(chains)
    .unwrap()
    .funding_limits(funding)
    .open()
    .unwrap()
}

/// A payer deposits `amount` of `token` and withdraws it all: the next root owes it that much.
fn withdraw(journal: &mut Journal, token: Address, amount: u128) {
    let submitted = journal
        .submit(withdrawal(Address::from_label("payer"), token, amount))
        .unwrap();
    assert!(submitted.refused.is_empty(), "{:?}", submitted.refused);
}

/// The home chain's active and pending epochs, read without deploying anything.
fn on_chain(node: &Node) -> (u64, u64) {
    let mut chain = node
        .settlement()
        .unwrap()
        .attach(EMBEDDED)
        .unwrap()
        .unwrap();
    let (active, pending, _) = chain.epochs().unwrap();
    (active, pending)
}

#[test]
fn a_due_epoch_is_closed_written_posted_and_activated_once_and_a_restart_posts_nothing_again() {
    let dir = tempfile::tempdir().unwrap();
    let node = node(dir.path(), FundingLimits::new());
    let start = now_ms();
    let mut rhythm = Rhythm::new(Duration::from_secs(60), dir.path().join("epochs"), start);

    assert!(
        rhythm.beat(&node, start + 1_000).is_empty(),
        "nothing is due a second after the start"
    );
    assert_eq!(node.journal().read(|j| j.economy().next_epoch()), 1);

    let beats = rhythm.beat(&node, start + MINUTE + 1_000);
    assert!(failures(&beats).is_empty(), "{:?}", failures(&beats));
    assert!(
        matches!(
            beats[0],
            Beat::Closed {
                epoch: 1,
                leaves: 1,
                ..
            }
        ),
        "{beats:?}"
    );
    let written: EpochBundle =
        serde_json::from_slice(&std::fs::read(rhythm.bundle_path(1)).unwrap()).unwrap();
    let recorded = node.journal().read(|j| j.economy().epochs()[0].root);
    assert_eq!(written.root, recorded, "the bundle written is the epoch's");
    let posted = beats
        .iter()
        .find_map(|beat| match beat {
            Beat::Posted {
                epoch: 1,
                published,
                ..
            } => Some(published),
            _ => None,
        })
        .expect("the root is posted");
    assert!(posted.activated, "no delay: active at once");
    assert_eq!(
        posted.funded_now,
        vec![(dev_token(), 2_000_000)],
        "the development token's shortfall is funded"
    );
    assert_eq!(on_chain(&node), (1, 1));

    assert!(
        rhythm.beat(&node, start + 3 * MINUTE).is_empty(),
        "an epoch in which nothing happened is not closed, and nothing is posted again"
    );
    let mut restarted = Rhythm::new(Duration::from_secs(60), dir.path().join("epochs"), start);
    assert!(
        restarted.beat(&node, start + 3 * MINUTE).is_empty(),
        "after a restart the chain's own record stops a second post"
    );
    assert_eq!(on_chain(&node), (1, 1));
}

#[test]
fn a_close_whose_post_never_happened_is_written_and_posted_by_the_next_round() {
    let dir = tempfile::tempdir().unwrap();
    let node = node(dir.path(), FundingLimits::new());
    // An operator closed over HTTP (or the node died between closing and posting).
    node.close_epoch().unwrap();
    let mut rhythm = Rhythm::new(
        Duration::from_secs(3600),
        dir.path().join("epochs"),
        now_ms(),
    );

    let beats = rhythm.beat(&node, now_ms());
    assert!(failures(&beats).is_empty(), "{:?}", failures(&beats));
    assert!(
        !beats.iter().any(|beat| matches!(beat, Beat::Closed { .. })),
        "not due: nothing new is closed"
    );
    assert!(
        matches!(beats[0], Beat::Written { epoch: 1, .. }),
        "{beats:?}"
    );
    assert!(
        matches!(beats[1], Beat::Posted { epoch: 1, .. }),
        "{beats:?}"
    );
    assert_eq!(on_chain(&node), (1, 1));
}

#[test]
fn a_root_waits_out_its_delay_and_is_activated_by_a_later_round() {
    let dir = tempfile::tempdir().unwrap();
    let node = node(dir.path(), FundingLimits::new());
    node.settlement().unwrap().open(EMBEDDED, 30).unwrap();
    node.close_epoch().unwrap();
    let start = now_ms();
    let mut rhythm = Rhythm::new(Duration::from_secs(3600), dir.path().join("epochs"), start);

    let beats = rhythm.beat(&node, start);
    assert!(
        beats.iter().any(|beat| matches!(
            beat,
            Beat::Posted {
                epoch: 1,
                delay: 30,
                ..
            }
        )),
        "{beats:?}"
    );
    assert_eq!(on_chain(&node), (0, 1), "posted, not yet active");
    assert!(
        rhythm.beat(&node, start + 10_000).is_empty(),
        "ten seconds in, the root still waits"
    );
    let beats = rhythm.beat(&node, start + 31_000);
    assert!(
        matches!(&beats[..], [Beat::Activated { epoch: 1, .. }]),
        "{beats:?}"
    );
    assert_eq!(on_chain(&node).0, 1, "active: claims are open");
    assert!(rhythm.beat(&node, start + 40_000).is_empty());
}

#[test]
fn a_shortfall_beyond_the_operators_limit_stops_the_post_and_names_the_fix() {
    let dir = tempfile::tempdir().unwrap();
    let node = node(dir.path(), FundingLimits::new());
    let mut journal = node.into_journal().unwrap();
    withdraw(&mut journal, eurc().address, 1_500_000);
    drop(journal);
    let node = self::node(
        dir.path(),
        FundingLimits::from([(eurc().address, 1_000_000)]),
    );
    node.close_epoch().unwrap();
    let mut rhythm = Rhythm::new(
        Duration::from_secs(3600),
        dir.path().join("epochs"),
        now_ms(),
    );

    let failed = failures(&rhythm.beat(&node, now_ms()));
    assert_eq!(failed.len(), 1, "{failed:?}");
    let distributor = node
        .settlement()
        .unwrap()
        .attach(EMBEDDED)
        .unwrap()
        .unwrap()
        .deployment()
        .distributor;
    for needed in [
        "posting the root".to_owned(),
        distributor.to_string(),
        "1.5 EURC".to_owned(),
        format!(
            "caravan chain fund embedded --token {} --amount 1.5",
            eurc().address
        ),
    ] {
        assert!(failed[0].contains(&needed), "{needed:?} in {failed:?}");
    }
    assert_eq!(on_chain(&node), (0, 0), "nothing was posted");
    let again = failures(&rhythm.beat(&node, now_ms()));
    assert_eq!(
        again, failed,
        "the next round tries again and says the same"
    );
}
