//! A node that keeps its rhythm: epochs closed on schedule while it serves, each bundle written
//! where people fetch it, and — on the home chain — the root funded, posted and activated.
//!
//! Every round works out what is left to do from the store and the chain, not from memory: a
//! round that failed (a chain that did not answer, a distributor short of funds, a crash) leaves
//! its work to a later round, and a root is never posted twice, because a post first asks the
//! chain which epochs it holds (and the distributor refuses an epoch that is not newer).

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use caravan_core::Hash32;
use caravan_core::epoch::EpochBundle;

use caravan_chain::settlement::Published;

use crate::Node;
use crate::chains::PayoutChain;
use crate::settlement::{Activation, PostOutcome};

/// What a round did, one step each.
#[derive(Debug)]
pub enum Beat {
    /// An epoch was closed; calls and judgments waited `took` for it.
    Closed {
        epoch: u64,
        root: Hash32,
        leaves: usize,
        payouts: usize,
        took: Duration,
    },
    /// An epoch's bundle was written for others to verify.
    Written { epoch: u64, path: PathBuf },
    /// An epoch's root was posted (and, without a delay, activated) on the home chain, which
    /// waits `delay` seconds before it can be activated otherwise.
    Posted {
        epoch: u64,
        chain: PayoutChain,
        root: Hash32,
        leaves: usize,
        published: Published,
        delay: u64,
    },
    /// A posted root's delay ended and it was activated: claims against it are open.
    Activated { chain: String, epoch: u64 },
    /// A step failed; a later round tries it again.
    Failed { step: &'static str, why: String },
}

/// How often the home chain is asked again whether it still holds the latest root: a
/// reorganisation deeper than the chain's confirmations can take a posted root away, and the
/// round that finds it gone posts it again. One read a minute.
const RECHECK_MS: u64 = 60_000;

/// Closes epochs every `every` and settles them; one per node, driven by [`Rhythm::beat`].
pub struct Rhythm {
    every: Duration,
    bundles: PathBuf,
    /// When the first close is due if the store has none (the node's start).
    started_ms: u64,
    /// Epochs up to this one needed nothing more on the home chain when last asked.
    settled_through: u64,
    /// When the home chain was last asked (see [`RECHECK_MS`]).
    asked_ms: u64,
    /// The latest bundle and the one before, kept so that posting reads neither again.
    latest: Option<Arc<EpochBundle>>,
    previous: Option<Arc<EpochBundle>>,
}

impl Rhythm {
    /// Closes an epoch `every` after the last close (or after `started_ms` when none was
    /// closed yet) unless nothing happened since, writing each bundle to
    /// `bundles/epoch-N.json`.
    pub fn new(every: Duration, bundles: PathBuf, started_ms: u64) -> Rhythm {
        Rhythm {
            every,
            bundles,
            started_ms,
            settled_through: 0,
            asked_ms: 0,
            latest: None,
            previous: None,
        }
    }

    /// Where epoch `epoch`'s bundle is written.
    pub fn bundle_path(&self, epoch: u64) -> PathBuf {
        self.bundles.join(format!("epoch-{epoch}.json"))
    }

    /// One round at `now_ms`: close the epoch if it is due, write the latest bundle if it is not
    /// written, then activate a root whose delay is over and post the latest epoch on the home
    /// chain (asking the chain again every [`RECHECK_MS`] even when it held the root, so a
    /// root a reorganisation took is posted again). Failures are returned as beats; nothing
    /// here panics or gives up for good.
    pub fn beat(&mut self, node: &Node, now_ms: u64) -> Vec<Beat> {
        let mut beats = Vec::new();
        if self.close_due(node, now_ms) {
            let started = Instant::now();
            match node.close_epoch() {
                Ok((outcome, bundle)) => {
                    beats.push(Beat::Closed {
                        epoch: outcome.epoch,
                        root: outcome.root,
                        leaves: outcome.leaves.len(),
                        payouts: outcome.payouts.len(),
                        took: started.elapsed(),
                    });
                    self.previous = self.latest.take();
                    self.latest = Some(Arc::new(bundle));
                }
                Err(why) => beats.push(Beat::Failed {
                    step: "closing the epoch",
                    why: why.to_string(),
                }),
            }
        }
        let latest = node.journal().read(|j| j.economy().next_epoch() - 1);
        if latest == 0 {
            return beats;
        }
        let path = self.bundle_path(latest);
        if !path.exists() {
            match self
                .bundle(node, latest)
                .and_then(|bundle| write_bundle(&path, &bundle))
            {
                Ok(()) => beats.push(Beat::Written {
                    epoch: latest,
                    path,
                }),
                Err(why) => beats.push(Beat::Failed {
                    step: "writing the bundle",
                    why,
                }),
            }
        }
        if latest > self.settled_through || now_ms >= self.asked_ms.saturating_add(RECHECK_MS) {
            self.asked_ms = now_ms;
            self.settle(node, latest, now_ms, &mut beats);
        }
        beats
    }

    /// Whether a close is due: `every` has passed since the last one and something happened.
    fn close_due(&self, node: &Node, now_ms: u64) -> bool {
        node.journal().read(|j| {
            let economy = j.economy();
            let next_seq = economy.head().next_seq;
            let (since_ms, idle) = match economy.epochs().last() {
                Some(last) => (last.at_ms, next_seq == last.seq + 1),
                None => (self.started_ms, next_seq <= 1),
            };
            !idle && now_ms >= since_ms.saturating_add(self.every.as_millis() as u64)
        })
    }

    /// Activates a home root whose delay is over and posts `latest` when nothing waits out a
    /// delay; `settled_through` advances only once the chain holds `latest`.
    fn settle(&mut self, node: &Node, latest: u64, now_ms: u64, beats: &mut Vec<Beat>) {
        let Some(chains) = node.settlement() else {
            return;
        };
        let Some(home) = node.desk().chains().home().map(|home| home.name.clone()) else {
            return;
        };
        match chains.activate_due(&home, now_ms / 1000) {
            Ok(Activation::Activated(epoch)) => beats.push(Beat::Activated {
                chain: home.clone(),
                epoch,
            }),
            Ok(Activation::Waiting { .. }) => return,
            Ok(Activation::Nothing) => {}
            Err(why) => {
                beats.push(Beat::Failed {
                    step: "activating the pending root",
                    why: why.to_string(),
                });
                return;
            }
        }
        let bundles = self.bundle(node, latest).and_then(|current| {
            let previous = match latest {
                1 => None,
                n => Some(self.bundle(node, n - 1)?),
            };
            Ok((current, previous))
        });
        let (current, previous) = match bundles {
            Ok(bundles) => bundles,
            Err(why) => {
                beats.push(Beat::Failed {
                    step: "reading the bundles to post",
                    why,
                });
                return;
            }
        };
        match chains.post(
            &home,
            0,
            &current,
            previous.as_deref(),
            node.funding_limits(),
        ) {
            Ok(PostOutcome::Posted {
                chain,
                root,
                leaves,
                published,
                delay,
            }) => {
                // A root waiting out its delay is activated by a later round.
                if published.activated {
                    self.settled_through = latest;
                }
                beats.push(Beat::Posted {
                    epoch: latest,
                    chain,
                    root,
                    leaves,
                    published,
                    delay,
                });
            }
            Ok(PostOutcome::AlreadyPosted { .. } | PostOutcome::NothingToPost { .. }) => {
                self.settled_through = latest;
            }
            Err(why) => beats.push(Beat::Failed {
                step: "posting the root",
                why: why.to_string(),
            }),
        }
    }

    /// Epoch `epoch`'s bundle: kept from this node's close or an earlier round, else read from
    /// the store (without holding up calls, see [`caravan_store::SharedJournal::bundle`]).
    fn bundle(&mut self, node: &Node, epoch: u64) -> Result<Arc<EpochBundle>, String> {
        for kept in [&self.latest, &self.previous].into_iter().flatten() {
            if kept.epoch == epoch {
                return Ok(Arc::clone(kept));
            }
        }
        let bundle = node
            .journal()
            .bundle(epoch)
            .map_err(|e| e.to_string())?
            .ok_or_else(|| format!("epoch {epoch} is not closed"))?;
        let bundle = Arc::new(bundle);
        if self.latest.as_ref().is_none_or(|kept| kept.epoch < epoch) {
            self.previous = self.latest.replace(Arc::clone(&bundle));
        } else {
            self.previous = Some(Arc::clone(&bundle));
        }
        Ok(bundle)
    }
}

/// Writes `bundle` to `path` whole or not at all (a temporary file renamed into place), so a
/// reader never sees half a bundle and a crash leaves none to mistake for one.
fn write_bundle(path: &Path, bundle: &EpochBundle) -> Result<(), String> {
    let dir = path.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    let partial = path.with_extension("json.partial");
    let json = serde_json::to_vec(bundle).expect("bundles always serialise");
    std::fs::File::create(&partial)
        .and_then(|mut file| {
            file.write_all(&json)?;
            file.sync_all()
        })
        .and_then(|()| std::fs::rename(&partial, path))
        .map_err(|e| format!("cannot write {}: {e}", path.display()))
}
