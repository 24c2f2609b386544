//! The demo's first chapter: a requester posts a real image-labeling task (the UCI handwritten
//! digits, 1,797 8×8 images with known truth), a simulated crowd of mixed skill — careful,
//! careless, and a ring of colluding accounts — labels it through the HTTP API, and the accepted
//! work is published as a dataset whose contributors share its royalties.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use axum::Router;
use axum::body::Body;
use axum::http::{Request, StatusCode};
use caravan_core::{Address, Token};
use caravan_node::desk::Desk;
use caravan_server::api::router;
use caravan_store::{Journal, now_ms};
use caravan_tasks::inference::{Method, infer};
use caravan_tasks::{Answers, board::Board};
use serde_json::{Value, json};
use tower::ServiceExt;

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

/// Calls the API in-process: the same router, handlers and errors a client meets over HTTP.
struct Api {
    app: Router,
    runtime: tokio::runtime::Runtime,
}

impl Api {
    fn call(
        &self,
        method: &str,
        uri: &str,
        body: Option<&Value>,
        text: Option<String>,
    ) -> (StatusCode, Value) {
        let request = Request::builder().method(method).uri(uri);
        let request = match (body, text) {
            (Some(json), _) => request
                .header("content-type", "application/json")
                .body(Body::from(json.to_string())),
            (None, Some(text)) => request.body(Body::from(text)),
            (None, None) => request.body(Body::empty()),
        }
        .expect("a well-formed request");
        self.runtime.block_on(async {
            let response = self.app.clone().oneshot(request).await.expect("infallible");
            let status = response.status();
            let bytes = axum::body::to_bytes(response.into_body(), usize::MAX)
                .await
                .unwrap_or_default();
            (
                status,
                serde_json::from_slice(&bytes).unwrap_or(Value::Null),
            )
        })
    }

    fn expect(
        &self,
        method: &str,
        uri: &str,
        body: Option<&Value>,
        text: Option<String>,
    ) -> Result<Value, String> {
        let (status, value) = self.call(method, uri, body, text);
        if status.is_success() {
            Ok(value)
        } else {
            Err(format!("{method} {uri}: {status} {value}"))
        }
    }
}

/// Runs the chapter on `journal` (which must hold `usdc`) and hands the journal back.
pub fn label_digits(
    journal: Journal,
    usdc: &Token,
    cast: &mut Cast,
    seed: u64,
) -> Result<Journal, String> {
    println!("chapter 1 — data work: a crowd labels handwritten digits\n");
    let digits = load_digits()?;
    let clock = Arc::new(AtomicU64::new(now_ms()));
    let desk_clock = clock.clone();
    let desk = Arc::new(
        Desk::over(
            Arc::new(caravan_store::SharedJournal::new(journal)),
            Arc::new(caravan_node::meter::Meter::default()),
            Arc::new(move || desk_clock.load(Ordering::Relaxed)),
        )
        .map_err(|e| e.to_string())?,
    );
    let api = Api {
        app: router(desk.clone()),
        runtime: tokio::runtime::Builder::new_current_thread()
            .build()
            .map_err(|e| e.to_string())?,
    };
    let requester = cast.person("digit-lab requester");
    let budget: caravan_core::Amount = 150_000_000;
    let deposited = desk
        .journal()
        .submit(vec![caravan_core::Event::Deposited {
            payer: requester,
            token: usdc.address,
            amount: budget,
        }])
        .map_err(|e| e.to_string())?;
    if let Some((_, why)) = deposited.refused.first() {
        return Err(format!("the requester's deposit was refused: {why}"));
    }
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
    let created = api.expect(
        "POST",
        "/v1/projects",
        Some(&json!({ "requester": requester, "spec": spec })),
        None,
    )?;
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
    let uri = format!("/v1/projects/{project}/items?format=jsonl&requester={requester}");
    let added = api.expect("POST", &uri, None, Some(jsonl))?;
    println!(
        "{} deposited 150 USDC and posted \"{}\": {} images ({} of them check questions with a known digit), 0.01 USDC per accepted label, the 150 USDC escrowed from its prepaid balance",
        cast.name(&requester),
        spec["title"].as_str().unwrap_or_default(),
        added["added"],
        GOLD_IMAGES
    );

    let crowd = recruit(cast);
    println!(
        "{} contributors: 30 careful, 8 careless, and a ring of 6 accounts that agree with each other on made-up answers\n",
        crowd.len()
    );
    let bar = progress(6_000, "labeling");
    let project_id = crate::commands::project_id(&project)?;
    std::thread::scope(|scope| {
        for lane in 0..CROWD_THREADS {
            let (desk, clock, truth_of, bar, crowd) = (&desk, &clock, &truth_of, &bar, &crowd);
            scope.spawn(move || {
                let mut dice = Dice(seed ^ (lane as u64 + 1).wrapping_mul(0x5851_f42d));
                let mine: Vec<&Member> = crowd.iter().skip(lane).step_by(CROWD_THREADS).collect();
                let mut active: Vec<&Member> = mine.clone();
                while !active.is_empty() {
                    let pick = dice.below(active.len() as u64) as usize;
                    let member = active[pick];
                    let Ok(assignment) = desk.next_item(&project_id, member.address) else {
                        active.swap_remove(pick);
                        continue;
                    };
                    let image = assignment.data["image"].as_u64().expect("image number");
                    let answer = answer(member.behaviour, truth_of[&image], image, &mut dice);
                    clock.fetch_add(2_500 + dice.below(4_000), Ordering::Relaxed);
                    let answer = caravan_tasks::schema::Answer::Choice(answer.to_string());
                    if desk
                        .submit(&project_id, member.address, assignment.item, answer)
                        .is_ok()
                    {
                        bar.inc(1);
                    }
                }
            });
        }
    });
    bar.finish_and_clear();

    desk.with_board(&project_id, |board| report(board, cast, &crowd, &truth_of))
        .map_err(|e| e.to_string())??;
    let publish = json!({ "requester": requester, "name": "handwritten-digits-8x8",
                          "licence": { "type": "open_use" }, "curator_share": "10%" });
    let published = api.expect(
        "POST",
        &format!("/v1/projects/{project}/publish"),
        Some(&publish),
        None,
    )?;
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
    let desk = Arc::try_unwrap(desk).map_err(|_| "the desk is still shared".to_owned())?;
    Ok(desk.into_journal())
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
    for j in board.judgments().iter().filter(|j| !j.gold) {
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
