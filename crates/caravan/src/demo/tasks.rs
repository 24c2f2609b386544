//! The demo's first chapter: a requester posts a real image-labeling task (the UCI handwritten
//! digits, 1,797 8×8 images with known truth), a simulated crowd of mixed skill — careful,
//! careless, and a ring of colluding accounts — labels it through the HTTP API, and the accepted
//! work is published as a dataset whose contributors share its royalties.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use axum::body::Body;
use caravan_core::{Address, Token};
use caravan_models::ArtifactStore;
use caravan_node::Node;
use caravan_node::gateway::receipt::NodeSigner;
use caravan_store::{Journal, now_ms};
use caravan_tasks::inference::{Method, infer};
use caravan_tasks::{Answers, board::Board};
use serde_json::json;

use super::client::Api;
use super::world::{Cast, Dice};
use crate::present::{amount, progress, table};

/// Threads of simulated contributors; their submissions share group commits.
const CROWD_THREADS: usize = 8;
/// Images held back as gold (check) questions with their known digit.
const GOLD_IMAGES: usize = 120;

/// One image: its pixels (0..=16) and its true digit.
pub struct Digit {
    pub pixels: Vec<u8>,
    pub truth: u8,
}

/// How a simulated contributor answers.
#[derive(Clone, Copy)]
enum Behaviour {
    /// Right with this probability (per mille); otherwise a digit that looks alike.
    Careful(u64),
    /// Right with this probability (per mille); otherwise any digit.
    Careless(u64),
    /// Colluding accounts that all give the same made-up digit for an image, to fake agreement.
    Ring,
}

struct Member {
    address: Address,
    behaviour: Behaviour,
}

/// Where the digits live: `CARAVAN_DIGITS_DIR`, or the user's cache, fetched on first use by
/// `scripts/fetch-digits.sh` from scikit-learn's wheel on PyPI.
fn digits_file() -> Result<PathBuf, String> {
    let dir = match std::env::var_os("CARAVAN_DIGITS_DIR") {
        Some(dir) => PathBuf::from(dir),
        None => {
            let cache = std::env::var_os("XDG_CACHE_HOME")
                .map(PathBuf::from)
                .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")))
                .ok_or("set CARAVAN_DIGITS_DIR to where the digits should live")?;
            cache.join("caravan/digits")
        }
    };
    let file = dir.join("digits.csv");
    if !file.exists() {
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../scripts/fetch-digits.sh");
        let status = std::process::Command::new("bash")
            .arg(&script)
            .arg(&dir)
            .status()
            .map_err(|e| format!("cannot run {}: {e}", script.display()))?;
        if !status.success() || !file.exists() {
            return Err(format!(
                "could not fetch the digits; run `scripts/fetch-digits.sh {}` from a caravan checkout (it needs python3 with pip and access to PyPI)",
                dir.display()
            ));
        }
    }
    Ok(file)
}

pub fn load_digits() -> Result<Vec<Digit>, String> {
    let file = digits_file()?;
    let text = std::fs::read_to_string(&file)
        .map_err(|e| format!("cannot read {}: {e}", file.display()))?;
    text.lines()
        .enumerate()
        .map(|(n, line)| {
            let values: Result<Vec<u8>, _> = line.split(',').map(str::parse).collect();
            match values {
                Ok(mut values) if values.len() == 65 => {
                    let truth = values.pop().expect("65 values");
                    Ok(Digit {
                        pixels: values,
                        truth,
                    })
                }
                _ => Err(format!(
                    "{} line {}: expected 65 small numbers",
                    file.display(),
                    n + 1
                )),
            }
        })
        .collect()
}

/// Runs the chapter on `journal` (which must hold `usdc`) in the store at `dir`, and hands the
/// journal back. Everyone acts through the node's API, signed in with their own wallet.
pub fn label_digits(
    journal: Journal,
    dir: &Path,
    usdc: &Token,
    cast: &mut Cast,
    seed: u64,
) -> Result<Journal, String> {
    println!("chapter 1 — data work: a crowd labels handwritten digits\n");
    let digits = load_digits()?;
    let clock = Arc::new(AtomicU64::new(now_ms()));
    let node_clock = clock.clone();
    let signer = NodeSigner::load_or_create(&dir.join("node.key")).map_err(|e| e.to_string())?;
    let node = Arc::new(
        Node::builder(journal, ArtifactStore::new(dir.join("models")), signer)
            .clock(Arc::new(move || node_clock.load(Ordering::Relaxed)))
            .sign_in(caravan_node::sessions::SignInPolicy {
                origin: caravan_node::sessions::origin::PublicOrigin::parse(
                    caravan_node::DEFAULT_PUBLIC_URL,
                )
                .expect("the default URL parses"),
                chain_ids: vec![caravan_chain::embedded::EMBEDDED_CHAIN_ID],
            })
            .open()
            .map_err(|e| e.to_string())?,
    );
    let api = Api::new(Arc::clone(&node))?;
    let requester = cast.person("digit-lab requester");
    let budget: caravan_core::Amount = 150_000_000;
    super::deposit_shared(node.journal(), dir, &[(requester, budget)])?;
    let lab = api.sign_in(cast.wallet(&requester))?;
    let spec = json!({
        "title": "Which digit is this? (8x8 handwriting)",
        "instructions": "Each image is a handwritten digit drawn on an 8x8 grid of ink levels 0-16. Answer the digit you see.",
        "schema": { "type": "single_choice", "options": (0..10).map(|d| d.to_string()).collect::<Vec<_>>() },
        "overlap": { "min": 3, "max": 7, "confidence": 0.95 },
        "token": usdc.address,
        "bounty": "10000",
        "budget": budget.to_string(),
        "gold_rate": 120000,
        "exam": { "questions": 5, "pass_mark": 600000 },
        "skill_bar": 650000,
        "gold_grace": 8,
        "min_seconds_per_item": 2,
        "daily_cap": 5000,
        "deadline_ms": u64::MAX,
        "lease_seconds": 300,
        "method": "ds"
    });
    let created = api
        .json("POST", "/v1/projects", Some(&lab), &json!({ "spec": spec }))
        .expect("POST /v1/projects")?;
    let project = created["project"].as_str().expect("an id").to_owned();
    let mut jsonl = String::new();
    let mut truth_of = BTreeMap::new();
    for (n, digit) in digits.iter().enumerate() {
        let data = json!({ "image": n, "pixels": digit.pixels });
        let gold = (n < GOLD_IMAGES).then(|| json!({ "choice": digit.truth.to_string() }));
        let line = match gold {
            Some(gold) => json!({ "data": data, "gold": gold }),
            None => json!({ "data": data }),
        };
        jsonl.push_str(&line.to_string());
        jsonl.push('\n');
        truth_of.insert(n as u64, digit.truth);
    }
    let uri = format!("/v1/projects/{project}/items?format=jsonl");
    let added = api
        .send("POST", &uri, Some(&lab), Body::from(jsonl))
        .expect("POST items")?;
    println!(
        "{} deposited 150 USDC, signed in with its wallet and posted \"{}\": {} images ({} of them check questions with a known digit), 0.01 USDC per accepted label, the 150 USDC escrowed from its prepaid balance",
        cast.name(&requester),
        spec["title"].as_str().unwrap_or_default(),
        added["added"],
        GOLD_IMAGES
    );

    let crowd = recruit(cast);
    let mut sessions = BTreeMap::new();
    for member in &crowd {
        sessions.insert(member.address, api.sign_in(cast.wallet(&member.address))?);
    }
    println!(
        "{} contributors signed in with their wallets: 30 careful, 8 careless, and a ring of 6 accounts that agree with each other on made-up answers",
        crowd.len()
    );
    show_an_impersonation_refused(&api, &project, cast, &crowd, &sessions)?;
    let bar = progress(6_000, "labeling");
    std::thread::scope(|scope| -> Result<(), String> {
        let mut lanes = Vec::new();
        for lane in 0..CROWD_THREADS {
            let (clock, truth_of, bar, crowd) = (&clock, &truth_of, &bar, &crowd);
            let (api, project, sessions) = (api.another()?, &project, &sessions);
            lanes.push(scope.spawn(move || {
                let mut dice = Dice(seed ^ (lane as u64 + 1).wrapping_mul(0x5851_f42d));
                let mut active: Vec<&Member> =
                    crowd.iter().skip(lane).step_by(CROWD_THREADS).collect();
                while !active.is_empty() {
                    let pick = dice.below(active.len() as u64) as usize;
                    let member = active[pick];
                    let session = sessions[&member.address].as_str();
                    let next = format!("/v1/projects/{project}/next");
                    let assigned = api.send("POST", &next, Some(session), Body::empty());
                    if !assigned.status.is_success() {
                        active.swap_remove(pick);
                        continue;
                    }
                    let image = assigned.body["data"]["image"]
                        .as_u64()
                        .expect("image number");
                    let answer = answer(member.behaviour, truth_of[&image], image, &mut dice);
                    clock.fetch_add(2_500 + dice.below(4_000), Ordering::Relaxed);
                    let body = json!({ "item": assigned.body["item"],
                                       "answer": { "choice": answer.to_string() } });
                    let judgments = format!("/v1/projects/{project}/judgments");
                    if api
                        .json("POST", &judgments, Some(session), &body)
                        .status
                        .is_success()
                    {
                        bar.inc(1);
                    }
                }
            }));
        }
        for lane in lanes {
            lane.join()
                .map_err(|_| "a labeling thread panicked".to_owned())?;
        }
        Ok(())
    })?;
    bar.finish_and_clear();

    let project_id = crate::commands::project_id(&project)?;
    let desk = node.desk();
    let board = desk
        .board_with_every_judgment(&project_id)
        .map_err(|e| e.to_string())?;
    report(&board, cast, &crowd, &truth_of)?;
    let publish = json!({ "name": "handwritten-digits-8x8",
                          "licence": { "type": "open_use" }, "curator_share": "10%" });
    let published = api
        .json(
            "POST",
            &format!("/v1/projects/{project}/publish"),
            Some(&lab),
            &publish,
        )
        .expect("POST publish")?;
    println!(
        "\npublished dataset {} — {} images with a label and confidence, item root {}",
        published["asset"].as_str().unwrap_or_default(),
        published["rows"],
        published["item_root"].as_str().unwrap_or_default()
    );
    let mut weights: Vec<(u64, Address)> = published["contributors"]
        .as_array()
        .map(|members| {
            members
                .iter()
                .filter_map(|m| Some((m["weight"].as_u64()?, m["account"].as_str()?.parse().ok()?)))
                .collect()
        })
        .unwrap_or_default();
    weights.sort_unstable_by(|a, b| b.cmp(a));
    let total: u64 = weights.iter().map(|(w, _)| w).sum();
    let mut t = table(
        &[
            "contributor",
            "royalty weight",
            "share of the dataset's 90%",
        ],
        &[1, 2],
    );
    for (weight, account) in weights.iter().take(5) {
        t.add_row(vec![
            cast.name(account),
            weight.to_string(),
            format!("{:.2}%", 100.0 * *weight as f64 / total.max(1) as f64),
        ]);
    }
    println!("top contributors by weight (accepted labels × measured skill):\n{t}");
    let ring_weight: u64 = weights
        .iter()
        .filter(|(_, a)| cast.name(a).starts_with("ring"))
        .map(|(w, _)| w)
        .sum();
    println!("weight held by the ring: {ring_weight}\n");
    let status = desk.status(&project_id).map_err(|e| e.to_string())?.1;
    println!(
        "paid to contributors: {} of the 150 USDC budget; the rest stays in escrow\n",
        desk.journal()
            .read(|j| amount(j.economy(), &usdc.address, status.paid))
    );
    drop(api);
    Arc::try_unwrap(node)
        .map_err(|_| "the node is still shared".to_owned())?
        .into_journal()
}

/// A ring account tries to take work and submit in a careful labeler's name, with its own
/// session: the node refuses and says what it may do.
fn show_an_impersonation_refused(
    api: &Api,
    project: &str,
    cast: &Cast,
    crowd: &[Member],
    sessions: &BTreeMap<Address, String>,
) -> Result<(), String> {
    let honest = crowd
        .iter()
        .find(|m| matches!(m.behaviour, Behaviour::Careful(_)))
        .ok_or("the crowd has no careful labeler")?;
    let ring = crowd
        .iter()
        .find(|m| matches!(m.behaviour, Behaviour::Ring))
        .ok_or("the crowd has no ring account")?;
    let reply = api.json(
        "POST",
        &format!("/v1/projects/{project}/next"),
        Some(&sessions[&ring.address]),
        &json!({ "contributor": honest.address }),
    );
    if reply.status != axum::http::StatusCode::FORBIDDEN {
        return Err(format!(
            "an impersonation was not refused: {} {}",
            reply.status, reply.body
        ));
    }
    println!(
        "{} tried to take work as {}: refused ({} {})\n",
        cast.name(&ring.address),
        cast.name(&honest.address),
        reply.status.as_u16(),
        reply.body["error"]["code"].as_str().unwrap_or_default()
    );
    Ok(())
}

fn recruit(cast: &mut Cast) -> Vec<Member> {
    let mut crowd = Vec::new();
    for n in 0..30 {
        let skill = 800 + (n * 37) % 190;
        crowd.push(Member {
            address: cast.person(&format!("careful labeler {n}")),
            behaviour: Behaviour::Careful(skill),
        });
    }
    for n in 0..8 {
        crowd.push(Member {
            address: cast.person(&format!("careless labeler {n}")),
            behaviour: Behaviour::Careless(450),
        });
    }
    for n in 0..6 {
        crowd.push(Member {
            address: cast.person(&format!("ring account {n}")),
            behaviour: Behaviour::Ring,
        });
    }
    crowd
}

/// Digits people confuse with each other.
fn look_alike(digit: u8) -> u8 {
    [8, 7, 7, 8, 9, 6, 5, 1, 3, 4][digit as usize]
}

fn answer(behaviour: Behaviour, truth: u8, image: u64, dice: &mut Dice) -> u8 {
    match behaviour {
        Behaviour::Careful(skill) if dice.below(1000) < skill => truth,
        Behaviour::Careful(_) => look_alike(truth),
        Behaviour::Careless(skill) if dice.below(1000) < skill => truth,
        Behaviour::Careless(_) => dice.below(10) as u8,
        Behaviour::Ring => (image.wrapping_mul(2_654_435_761) >> 7) as u8 % 10,
    }
}

/// Accuracy before and after aggregation, and who was paused and why.
fn report(
    board: &Board,
    cast: &Cast,
    crowd: &[Member],
    truth_of: &BTreeMap<u64, u8>,
) -> Result<(), String> {
    let image = |item: u32| {
        board.items()[item as usize].item.data["image"]
            .as_u64()
            .unwrap_or(0)
    };
    let options: Vec<String> = (0..10).map(|d| d.to_string()).collect();
    let mut all = Answers::new(options.clone()).map_err(|e| e.to_string())?;
    let mut counted = Answers::new(options).map_err(|e| e.to_string())?;
    let (mut right, mut judged) = (0u64, 0u64);
    for (_, j) in board.judgments().filter(|(_, j)| !j.gold) {
        let caravan_tasks::schema::Answer::Choice(label) = &j.answer else {
            continue;
        };
        let key = image(j.item).to_string();
        all.push(&key, &j.contributor.to_string(), label)
            .map_err(|e| e.to_string())?;
        if j.counts() {
            counted
                .push(&key, &j.contributor.to_string(), label)
                .map_err(|e| e.to_string())?;
        }
        judged += 1;
        right += u64::from(label.parse::<u8>().ok() == Some(truth_of[&image(j.item)]));
    }
    let accuracy = |answers: &Answers, method| {
        let result = infer(answers, method);
        let right = (0..answers.item_count() as u32)
            .filter(|&i| {
                let digit: u8 = answers
                    .label_name(result.labels[i as usize])
                    .parse()
                    .unwrap_or(99);
                let image: u64 = answers.item_key(i).parse().unwrap_or(0);
                truth_of[&image] == digit
            })
            .count();
        100.0 * right as f64 / answers.item_count().max(1) as f64
    };
    let mut t = table(&["labels", "accuracy"], &[1]);
    t.add_row(vec![
        format!("single judgments ({judged})"),
        format!("{:.2}%", 100.0 * right as f64 / judged.max(1) as f64),
    ]);
    t.add_row(vec![
        "majority vote, everyone".into(),
        format!("{:.2}%", accuracy(&all, Method::MajorityVote)),
    ]);
    t.add_row(vec![
        "majority vote, paused accounts left out".into(),
        format!("{:.2}%", accuracy(&counted, Method::MajorityVote)),
    ]);
    t.add_row(vec![
        "Dawid–Skene, paused accounts left out (published)".into(),
        format!("{:.2}%", accuracy(&counted, Method::DawidSkene)),
    ]);
    println!("accuracy against the known digits, before and after aggregation:\n{t}");

    let mut paused = table(&["paused", "why"], &[]);
    let mut groups: BTreeMap<&str, (usize, usize)> = BTreeMap::new();
    for member in crowd {
        let kind = match member.behaviour {
            Behaviour::Careful(_) => "careful",
            Behaviour::Careless(_) => "careless",
            Behaviour::Ring => "ring",
        };
        let entry = groups.entry(kind).or_default();
        entry.1 += 1;
        if let Some(reason) = board
            .contributor(&member.address)
            .and_then(|c| c.paused.as_ref())
        {
            entry.0 += 1;
            paused.add_row(vec![cast.name(&member.address), reason.to_string()]);
        }
    }
    println!("\n{paused}");
    for (kind, (stopped, of)) in groups {
        println!("{kind}: {stopped} of {of} paused");
    }
    Ok(())
}
