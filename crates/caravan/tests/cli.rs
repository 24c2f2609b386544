//! The command line as a person uses it: the demo end to end, the commands on the store it leaves,
//! and clear errors for bad input.

use std::path::Path;
use std::process::{Command, Output};

fn caravan(data_dir: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_caravan"))
        .arg("--data-dir")
        .arg(data_dir)
        .args(args)
        .env_remove("CARAVAN_DATABASE_URL")
        .output()
        .expect("run caravan")
}

/// Runs caravan with anvil's development key in `CARAVAN_TEST_CHAIN_KEY`, the variable the
/// tests' JSON-RPC chain is added with.
fn caravan_with_chain_key(data_dir: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_caravan"))
        .arg("--data-dir")
        .arg(data_dir)
        .args(args)
        .env(
            "CARAVAN_TEST_CHAIN_KEY",
            caravan_chain::anvil::ANVIL_DEV_KEY,
        )
        .env_remove("CARAVAN_DATABASE_URL")
        .output()
        .expect("run caravan")
}

/// Registers the development USDC (6 decimals) at `address`.
fn register_usdc(dir: &Path, address: &str) {
    ok(&caravan(
        dir,
        &[
            "token",
            "register",
            "--address",
            address,
            "--symbol",
            "USDC",
            "--decimals",
            "6",
        ],
    ));
}

fn ok(output: &Output) -> String {
    assert!(
        output.status.success(),
        "caravan failed:\nstdout:\n{}\nstderr:\n{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout.clone()).unwrap()
}

fn failure(output: &Output) -> String {
    assert!(
        !output.status.success(),
        "caravan should have failed:\n{}",
        String::from_utf8_lossy(&output.stdout)
    );
    String::from_utf8(output.stderr.clone()).unwrap()
}

#[test]
fn the_demo_pays_everyone_exactly_and_leaves_a_store_that_verifies() {
    let scratch = tempfile::tempdir().unwrap();
    let out = ok(&caravan(
        scratch.path(),
        &["demo", "--calls", "3000", "--seed", "11", "--skip-labeling"],
    ));
    assert!(out.contains("exact to the last base unit"), "{out}");
    assert!(
        out.contains("verifies against the root (as OpenZeppelin's MerkleProof would): true"),
        "{out}"
    );
    assert!(out.contains("settled on the embedded chain"), "{out}");
    let claims: Vec<&str> = out
        .lines()
        .filter(|l| {
            l.starts_with("│ annotator-")
                || l.starts_with("│ validator-")
                || l.starts_with("│ node-")
        })
        .filter(|l| l.contains("┆         0 USDC ┆"))
        .collect();
    assert_eq!(claims.len(), 3, "three claims from a zero balance: {out}");
    assert!(
        out.contains("data contributor of product-reviews-sentiment"),
        "{out}"
    );
    let demo_dir = std::fs::read_dir(scratch.path())
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();

    let verified = ok(&caravan(&demo_dir, &["log", "verify"]));
    assert!(verified.contains("log verified: 3012 events"), "{verified}");
    assert!(
        verified.contains("1 kept snapshot(s) equal the replayed state"),
        "{verified}"
    );

    let account = out
        .lines()
        .find_map(|l| l.strip_prefix("  \"account\": \""))
        .map(|l| l.trim_end_matches("\",").to_string())
        .expect("the demo prints a proof");
    let bundle = scratch.path().join("epoch-1.json");
    let shown = ok(&caravan(
        &demo_dir,
        &[
            "epoch",
            "show",
            "1",
            "--account",
            &account,
            "--out",
            bundle.to_str().unwrap(),
        ],
    ));
    assert!(
        shown.contains("proof verifies against the root: true"),
        "{shown}"
    );
    let checked = ok(&caravan(
        &demo_dir,
        &["epoch", "verify-bundle", bundle.to_str().unwrap()],
    ));
    assert!(checked.contains("epoch 1 verifies"), "{checked}");

    let text = std::fs::read_to_string(&bundle).unwrap();
    let needle = "\"cumulative\": \"";
    let at = text.rfind(needle).unwrap() + needle.len();
    let tampered = format!("{}9{}", &text[..at], &text[at..]);
    std::fs::write(&bundle, tampered).unwrap();
    let refused = failure(&caravan(
        &demo_dir,
        &["epoch", "verify-bundle", bundle.to_str().unwrap()],
    ));
    assert!(refused.contains("bundle does NOT verify"), "{refused}");
}

#[test]
fn a_store_is_built_by_hand_with_the_commands() {
    let scratch = tempfile::tempdir().unwrap();
    let dir = scratch.path();
    let treasury = "0x5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAed";
    let token = "0x5FbDB2315678afecb367f032d93F642f64180aa3";
    let alice = "0xdbF03B407c01E7cD3CBea99509d93f8DDDC8C6FB";
    let payer = "0xD1220A0cf47c7B9Be7A2E6BA89F429762e7b9aDb";
    let node = "0x00000000000000000000000000000000000000aa";
    ok(&caravan(
        dir,
        &["init", "--treasury", treasury, "--protocol-fee", "1"],
    ));
    assert!(failure(&caravan(dir, &["init", "--treasury", treasury])).contains("already set up"));
    register_usdc(dir, token);
    let examples = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples");
    let dataset = examples.join("dataset.json");
    let model = examples.join("model.json");
    let register = |manifest: &Path| {
        caravan(
            dir,
            &[
                "asset",
                "register",
                "--manifest",
                manifest.to_str().unwrap(),
            ],
        )
    };
    assert!(
        failure(&register(&model))
            .contains("is not registered; register parents before their children")
    );
    let id = ok(&register(&dataset)).trim().to_string();
    let model_text = std::fs::read_to_string(&model).unwrap();
    assert!(
        model_text.contains(&id),
        "examples/model.json must name the id examples/dataset.json registers as: {id}"
    );
    assert!(failure(&register(&dataset)).contains("already registered"));
    let model_id = ok(&register(&model)).trim().to_string();
    assert!(
        model_id.starts_with("0x") && model_id.len() == 66,
        "{model_id}"
    );
    let shown = ok(&caravan(dir, &["asset", "show", &id]));
    assert!(
        shown.contains("commercial, 0.0025 USDC per call, derivatives owe ≥ 10%"),
        "{shown}"
    );
    assert!(
        shown.contains("registered 20") && shown.contains(" UTC"),
        "when it was registered:\n{shown}"
    );
    assert!(
        shown.contains("ticket-router") && shown.contains("TRAINED_ON"),
        "the dataset lists its child:\n{shown}"
    );

    let broke = failure(&caravan(
        dir,
        &[
            "usage", "record", "--asset", &model_id, "--payer", payer, "--node", node, "--calls",
            "4",
        ],
    ));
    assert!(
        broke.contains("holds 0 base units") && broke.contains("less than the 40000 asked for"),
        "{broke}"
    );
    ok(&caravan(
        dir,
        &[
            "deposit", "--payer", payer, "--token", token, "--amount", "1.5",
        ],
    ));
    ok(&caravan(
        dir,
        &[
            "usage", "record", "--asset", &model_id, "--payer", payer, "--node", node, "--calls",
            "4",
        ],
    ));
    let closed = ok(&caravan(dir, &["epoch", "close"]));
    assert!(closed.contains("epoch 1 closed"), "{closed}");
    let balances = ok(&caravan(dir, &["balances", "--account", alice]));
    // 4 calls × 0.01 USDC, 1% fee: the model keeps 0.0396 and sends 25% (0.0099) to the dataset,
    // whose contributors share 90% (0.00891) by weight 3 : 1.
    assert!(
        balances.contains("0.006682 USDC"),
        "alice's three quarters of 0.00891 USDC:\n{balances}"
    );
    let node_balance = ok(&caravan(dir, &["balances", "--account", node]));
    assert!(
        node_balance.contains("0.00594 USDC"),
        "the node's 20% of the model's 0.0297:\n{node_balance}"
    );
    assert!(ok(&caravan(dir, &["log", "verify"])).contains("1 epoch(s) re-derived"));
}

#[test]
fn bad_input_is_refused_with_what_to_do() {
    let scratch = tempfile::tempdir().unwrap();
    let dir = scratch.path();
    let typo = failure(&caravan(
        dir,
        &[
            "init",
            "--treasury",
            "0x5AAeb6053F3E94C9b9A09f33669435E7Ef1BeAed",
        ],
    ));
    assert!(
        typo.contains("wrong EIP-55 checksum")
            && typo.contains("0x5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAed"),
        "{typo}"
    );
    let fee = failure(&caravan(
        dir,
        &[
            "init",
            "--treasury",
            "0x5aaeb6053f3e94c9b9a09f33669435e7ef1beaed",
            "--protocol-fee",
            "150",
        ],
    ));
    assert!(fee.contains("above 100%"), "{fee}");
    let manifest = dir.join("bad.json");
    std::fs::write(&manifest, r#"{"kind":"painting","name":"x"}"#).unwrap();
    let bad = failure(&caravan(
        dir,
        &[
            "asset",
            "register",
            "--manifest",
            manifest.to_str().unwrap(),
        ],
    ));
    assert!(bad.contains("unknown variant `painting`"), "{bad}");
    let show_unknown = || {
        failure(&caravan(
            dir,
            &["asset", "show", &format!("0x{}", "ab".repeat(32))],
        ))
    };
    let nothing = show_unknown();
    assert!(
        nothing.contains("there is no caravan store in") && nothing.contains("caravan init"),
        "a read command creates no store: {nothing}"
    );
    assert!(!dir.join("caravan.db").exists());
    ok(&caravan(
        dir,
        &[
            "init",
            "--treasury",
            "0x5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAed",
        ],
    ));
    let unknown = show_unknown();
    assert!(unknown.contains("is not registered"), "{unknown}");
    let not_pg = failure(&caravan(
        dir,
        &["--database", "mysql://root:hunter2@db/x", "balances"],
    ));
    assert!(
        not_pg.contains("not a PostgreSQL URL") && !not_pg.contains("hunter2"),
        "{not_pg}"
    );
    assert!(failure(&caravan(dir, &["epoch", "show"])).contains("no epoch has been closed yet"));
}

#[test]
fn the_benchmark_prints_one_line_per_figure() {
    let scratch = tempfile::tempdir().unwrap();
    let out = ok(&Command::new(env!("CARGO_BIN_EXE_caravan"))
        .args([
            "bench",
            "economy",
            "--quick",
            "--runs",
            "1",
            "--scratch-dir",
        ])
        .arg(scratch.path())
        .output()
        .unwrap());
    for name in [
        "ingest_events_per_s",
        "ingest_events_per_s_64_clients",
        "ingest_events_per_group_commit_64_clients",
        "epoch_close_s",
        "epoch_close_tenth_calls_s",
        "epoch_close_durable_s",
        "merkle_3m2_s",
        "merkle_3m2_build_s",
    ] {
        let line = out
            .lines()
            .find(|l| l.starts_with(&format!("{name}: ")))
            .unwrap_or_else(|| panic!("no {name} line in:\n{out}"));
        let value: f64 = line.split(": ").nth(1).unwrap().parse().unwrap();
        assert!(value > 0.0, "{line}");
    }
}

#[test]
fn the_gateway_benchmark_measures_each_concurrency_from_a_separate_load_process() {
    let scratch = tempfile::tempdir().unwrap();
    let out = ok(&Command::new(env!("CARGO_BIN_EXE_caravan"))
        .args(["bench", "gateway", "--quick", "--scratch-dir"])
        .arg(scratch.path())
        .output()
        .unwrap());
    for concurrency in [1, 16, 64] {
        for (name, mode) in [
            ("added_p50_us", ""),
            ("added_p99_us", ""),
            ("added_p50_us", "_queued"),
            ("added_p99_us", "_queued"),
        ] {
            let name = format!("{name}_c{concurrency}{mode}");
            let line = out
                .lines()
                .find(|l| l.starts_with(&format!("{name}: ")))
                .unwrap_or_else(|| panic!("no {name} line in:\n{out}"));
            let value: f64 = line.split(": ").nth(1).unwrap().parse().unwrap();
            assert!(value >= 0.0, "{line}");
        }
    }
    let calls: f64 = out
        .lines()
        .find_map(|l| l.strip_prefix("classifier_calls_per_s: "))
        .unwrap_or_else(|| panic!("no classifier line in:\n{out}"))
        .parse()
        .unwrap();
    assert!(calls > 0.0, "{out}");
    installed_models_dir();
    let tokens: f64 = out
        .lines()
        .find_map(|l| l.strip_prefix("embedding_tokens_per_s: "))
        .unwrap_or_else(|| panic!("no embedding line in:\n{out}"))
        .parse()
        .unwrap();
    assert!(tokens > 0.0, "{out}");
}

#[test]
fn quality_infer_prints_labels_or_accuracy_and_names_bad_lines() {
    let scratch = tempfile::tempdir().unwrap();
    let answers = scratch.path().join("answers.csv");
    let truth = scratch.path().join("truth.csv");
    // Two reliable workers and one who always disagrees; "q3" is a tie between label 1 and 2.
    std::fs::write(
        &answers,
        "question,worker,answer\nq1,a,1\nq1,b,1\nq1,c,2\nq2,a,2\nq2,b,2\nq2,c,1\nq3,a,2\nq3,c,1\n",
    )
    .unwrap();
    // Nobody judged q9: published evaluations leave it out, and the summary says so.
    std::fs::write(&truth, "question,truth\nq1,1\nq2,2\nq3,2\nq9,1\n").unwrap();
    let args = |extra: &[&str]| {
        let mut args = vec!["quality", "infer", "--method", "mv", "--answers"];
        args.push(answers.to_str().unwrap());
        args.extend_from_slice(extra);
        args.iter().map(|s| s.to_string()).collect::<Vec<_>>()
    };
    let run = |args: Vec<String>| {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        caravan(scratch.path(), &args)
    };

    let labels = ok(&run(args(&[])));
    assert_eq!(
        labels, "item,label,confidence\nq1,1,0.6667\nq2,2,0.6667\nq3,1,0.5000\n",
        "majority vote breaks the q3 tie towards the smallest label"
    );
    let summary = ok(&run(args(&["--truth", truth.to_str().unwrap()])));
    assert_eq!(
        summary.lines().last(),
        Some("accuracy: 0.6667"),
        "{summary}"
    );
    let unjudged = summary
        .lines()
        .find(|l| l.contains("truth items nobody judged"))
        .unwrap_or_else(|| panic!("{summary}"));
    assert!(unjudged.contains(" 1 "), "{unjudged}");

    std::fs::write(&answers, "question,worker,answer\nq1,a,1\nq1;b;2\n").unwrap();
    let err = failure(&run(args(&[])));
    assert!(
        err.contains("line 3") && err.contains("3 comma-separated columns"),
        "{err}"
    );
}

/// Where the demo's digits are (`$CARAVAN_DIGITS_DIR`, else `~/.cache/caravan/digits`). The test
/// fails, naming the script that fetches them, when they are not there.
fn digits_dir() -> std::path::PathBuf {
    let dir = cache_dir("CARAVAN_DIGITS_DIR", "digits");
    installed(
        dir.join("digits.csv").exists(),
        format!("digits not found in {}", dir.display()),
        "scripts/fetch-digits.sh",
    );
    dir
}

/// `$variable`, else `~/.cache/caravan/{name}`: where the project's install scripts put things.
fn cache_dir(variable: &str, name: &str) -> std::path::PathBuf {
    std::env::var_os(variable)
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| {
            let home = std::env::var_os("HOME").expect("HOME is set");
            std::path::PathBuf::from(home)
                .join(".cache/caravan")
                .join(name)
        })
}

/// Fails the test when something it needs is not `found`, saying what is missing and which
/// script installs it: a test that needs it never passes without having run.
fn installed(found: bool, missing: String, script: &str) {
    assert!(
        found,
        "{missing}; run {script} (or scripts/test.sh, which installs everything the tests need)"
    );
}

/// Runs the demo with `calls` paid calls in `scratch`; returns its output and the directory of
/// the store it left.
fn run_demo(scratch: &Path, digits: &Path, calls: &str) -> (String, std::path::PathBuf) {
    let out = Command::new(env!("CARGO_BIN_EXE_caravan"))
        .arg("--data-dir")
        .arg(scratch)
        .args(["demo", "--calls", calls])
        .env("CARAVAN_DIGITS_DIR", digits)
        .env_remove("CARAVAN_DATABASE_URL")
        .output()
        .unwrap();
    let out = ok(&out);
    let dir = std::fs::read_dir(scratch)
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    (out, dir)
}

#[test]
fn the_demo_crowd_labels_digits_and_the_ring_is_caught() {
    let digits = digits_dir();
    let scratch = tempfile::tempdir().unwrap();
    let (out, demo_dir) = run_demo(scratch.path(), &digits, "500");
    assert!(out.contains("ring: 6 of 6 paused"), "{out}");
    assert!(out.contains("weight held by the ring: 0"), "{out}");
    let accuracy = |row: &str| -> f64 {
        let line = out.lines().find(|l| l.contains(row)).unwrap();
        let cell = line.split('┆').nth(1).unwrap();
        let cell = cell.trim_matches(|c: char| c.is_whitespace() || c == '│' || c == '%');
        cell.parse().unwrap()
    };
    let single = accuracy("single judgments");
    let published = accuracy("Dawid–Skene");
    assert!(
        published > 95.0 && published > single + 5.0,
        "{single} -> {published}"
    );
    // Chapter 2: the model trained on the crowd's labels is called over HTTP and pays them.
    assert!(
        out.contains("verifies against the node's address") && out.contains(": true\n"),
        "{out}"
    );
    let calls_row = out
        .lines()
        .skip_while(|l| !l.contains("true digit"))
        .nth(2)
        .unwrap();
    let cells: Vec<&str> = calls_row
        .split('┆')
        .map(|c| c.trim_matches(|ch: char| ch.is_whitespace() || ch == '│'))
        .collect();
    assert_eq!(cells[0], "3000", "{calls_row}");
    assert_eq!(cells[1], "3000", "{calls_row}");
    let right: f64 = cells[2].trim_end_matches('%').parse().unwrap();
    assert!(right > 90.0, "{calls_row}");
    assert_eq!(cells[3], "6 USDC", "{calls_row}");
    let labelers = out
        .lines()
        .find(|l| l.starts_with("the digit-reader's calls paid"))
        .unwrap();
    assert!(
        labelers.contains("to 2") || labelers.contains("to 3"),
        "{labelers}"
    );
    assert!(out.contains("exact to the last base unit"), "{out}");
    let listed = ok(&caravan(&demo_dir, &["task", "list"]));
    assert!(listed.contains("Which digit is this?"), "{listed}");
    let verified = ok(&caravan(&demo_dir, &["log", "verify"]));
    assert!(verified.contains("log verified"), "{verified}");
}

/// The id in the `asset list` row of the asset named `name`.
fn asset_id(dir: &Path, name: &str) -> String {
    let listed = ok(&caravan(dir, &["asset", "list"]));
    let row = listed
        .lines()
        .find(|l| l.contains(name))
        .unwrap_or_else(|| panic!("no asset {name} in {listed}"));
    row.split('┆').nth(1).unwrap().trim().to_owned()
}

/// The first line's `model asset ID`.
fn model_id(output: &str) -> String {
    output
        .lines()
        .next()
        .and_then(|l| l.strip_prefix("model asset "))
        .unwrap_or_else(|| panic!("no model id in {output}"))
        .to_owned()
}

#[test]
fn a_model_is_trained_on_the_crowd_labelled_digits_and_paid_through_its_lineage() {
    let digits = digits_dir();
    let scratch = tempfile::tempdir().unwrap();
    let (_, dir) = run_demo(scratch.path(), &digits, "100");
    let dataset = asset_id(&dir, "handwritten-digits-8x8");
    let usdc = "0x5FbDB2315678afecb367f032d93F642f64180aa3";
    let developer = "0x1111111111111111111111111111111111111111";
    let train = |name: &str, extra: &[&str]| {
        let mut args = vec![
            "model",
            "train",
            "--dataset",
            &dataset,
            "--developer",
            developer,
            "--name",
            name,
            "--token",
            usdc,
            "--price",
            "0.002",
        ];
        args.extend_from_slice(extra);
        caravan(&dir, &args)
    };
    let trained = ok(&train("digits-logistic", &[]));
    let accuracy: f64 = trained
        .split("held-out accuracy ")
        .nth(1)
        .and_then(|rest| rest.split('%').next())
        .unwrap()
        .parse()
        .unwrap();
    assert!(accuracy > 90.0, "{trained}");
    assert!(
        trained.contains("64 numbers from pixels, 10 labels"),
        "{trained}"
    );
    let model = model_id(&trained);

    // The model's lineage names the dataset, so the labelers are paid from its calls.
    let shown = ok(&caravan(&dir, &["asset", "show", &model]));
    assert!(shown.contains("TRAINED_ON"), "{shown}");
    assert!(shown.contains("handwritten-digits-8x8"), "{shown}");

    // A validator evaluates the model on labelled images it holds and signs the result.
    let text = std::fs::read_to_string(digits.join("digits.csv")).unwrap();
    let held = scratch.path().join("validation.jsonl");
    let mut rows = String::new();
    for line in text.lines().rev().take(200) {
        let mut values: Vec<u8> = line.split(',').map(|v| v.parse().unwrap()).collect();
        let truth = values.pop().unwrap();
        rows.push_str(&format!(
            "{{\"data\": {{\"pixels\": {values:?}}}, \"label\": \"{truth}\"}}\n"
        ));
    }
    std::fs::write(&held, rows).unwrap();
    let key_file = scratch.path().join("validator.key");
    std::fs::write(&key_file, "07".repeat(32)).unwrap();
    let attest = [
        "model",
        "attest",
        "--model",
        &model,
        "--key-file",
        key_file.to_str().unwrap(),
        held.to_str().unwrap(),
    ];
    let attested = ok(&caravan(&dir, &attest));
    let attested_accuracy: f64 = attested
        .split("attests accuracy ")
        .nth(1)
        .and_then(|rest| rest.split('%').next())
        .unwrap()
        .parse()
        .unwrap();
    assert!(attested_accuracy > 90.0, "{attested}");
    let shown = ok(&caravan(&dir, &["asset", "show", &model]));
    assert!(shown.contains("attested by validators"), "{shown}");
    std::fs::write(&key_file, "not a key").unwrap();
    let err = failure(&caravan(&dir, &attest));
    assert!(err.contains("64 hex digits"), "{err}");

    let payer = "0x70997970C51812dc3A010C7d01b50e0d17dc79C8";
    ok(&caravan(
        &dir,
        &[
            "deposit", "--payer", payer, "--token", usdc, "--amount", "100",
        ],
    ));
    ok(&caravan(
        &dir,
        &[
            "usage", "record", "--asset", &model, "--payer", payer, "--node", developer, "--calls",
            "1000",
        ],
    ));
    let closed = ok(&caravan(&dir, &["epoch", "close"]));
    let labelers: u32 = closed
        .lines()
        .find(|l| l.contains("data contributor"))
        .and_then(|l| l.split('┆').nth(1))
        .map(|cell| cell.trim().parse().unwrap())
        .unwrap_or_else(|| panic!("no data contributor payouts in {closed}"));
    assert!(labelers >= 20, "{closed}");
    let validator_row = closed
        .lines()
        .find(|l| l.contains("│ validator"))
        .unwrap_or_else(|| panic!("the validator is not paid in {closed}"));
    assert!(!validator_row.contains("no validator yet"), "{closed}");

    // Predictions for the first ten images, from the stored artifact, are mostly right.
    let text = std::fs::read_to_string(digits.join("digits.csv")).unwrap();
    let items = scratch.path().join("items.jsonl");
    let mut lines = String::new();
    let mut truths = Vec::new();
    for line in text.lines().take(10) {
        let mut values: Vec<u8> = line.split(',').map(|v| v.parse().unwrap()).collect();
        truths.push(values.pop().unwrap().to_string());
        lines.push_str(&format!("{{\"pixels\": {values:?}}}\n"));
    }
    std::fs::write(&items, lines).unwrap();
    let predict = [
        "model",
        "predict",
        "--model",
        &model,
        items.to_str().unwrap(),
    ];
    let predicted = ok(&caravan(&dir, &predict));
    let right = predicted
        .lines()
        .zip(&truths)
        .filter(|(line, truth)| line.contains(&format!("\"label\":\"{truth}\"")))
        .count();
    assert!(right >= 8, "{predicted}");
    std::fs::write(&items, "{\"pixels\": [1, 2]}\n").unwrap();
    let err = failure(&caravan(&dir, &predict));
    assert!(
        err.contains("line 1: field \"pixels\" holds 2 numbers"),
        "{err}"
    );

    // A fine-tune is a child with a FINETUNED_FROM edge to its base.
    let tuned = ok(&caravan(
        &dir,
        &[
            "model",
            "finetune",
            "--base",
            &model,
            "--fine-tuner",
            developer,
            "--dataset",
            &dataset,
            "--name",
            "digits-tuned",
            "--token",
            usdc,
            "--price",
            "0.003",
        ],
    ));
    let shown = ok(&caravan(&dir, &["asset", "show", &model_id(&tuned)]));
    assert!(shown.contains("FINETUNED_FROM"), "{shown}");
    assert!(shown.contains("fine-tuner"), "{shown}");

    // Bad input names the problem.
    let not_from_a_project = asset_id(&dir, "product-reviews-sentiment");
    let err = failure(&caravan(
        &dir,
        &[
            "model",
            "train",
            "--dataset",
            &not_from_a_project,
            "--developer",
            developer,
            "--name",
            "x",
            "--token",
            usdc,
            "--price",
            "0.002",
        ],
    ));
    assert!(err.contains("no data project published dataset"), "{err}");
    let err = failure(&train("digits-2", &["--validator-share", "90%"]));
    assert!(err.contains("add up to more than 100%"), "{err}");
}

#[test]
fn a_requester_posts_and_imports_with_the_task_commands() {
    let scratch = tempfile::tempdir().unwrap();
    let dir = scratch.path();
    let examples = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples");
    let requester = "0x70997970C51812dc3A010C7d01b50e0d17dc79C8";
    let spec = examples.join("project.json");
    let spec = spec.to_str().unwrap();

    let err = failure(&caravan(
        dir,
        &["task", "create", "--requester", requester, "--spec", spec],
    ));
    assert!(err.contains("is not registered; register it"), "{err}");
    let usdc = "0x5FbDB2315678afecb367f032d93F642f64180aa3";
    register_usdc(dir, usdc);
    // The budget (50 USDC) comes out of the requester's prepaid balance: never from nothing.
    let deposit = |amount: &str| {
        ok(&caravan(
            dir,
            &[
                "deposit", "--payer", requester, "--token", usdc, "--amount", amount,
            ],
        ))
    };
    deposit("30");
    let err = failure(&caravan(
        dir,
        &["task", "create", "--requester", requester, "--spec", spec],
    ));
    assert!(
        err.contains("30 USDC is available") && err.contains("Deposit at least 20 USDC more"),
        "{err}"
    );
    deposit("20");
    let created = ok(&caravan(
        dir,
        &["task", "create", "--requester", requester, "--spec", spec],
    ));
    let project = created.trim().strip_prefix("project ").unwrap().to_owned();

    let reviews = examples.join("reviews.csv");
    let reviews = reviews.to_str().unwrap();
    let import = [
        "task",
        "import",
        &project,
        "--requester",
        requester,
        reviews,
    ];
    assert!(ok(&caravan(dir, &import)).contains("imported 8 new items (0 already present)"));
    assert!(ok(&caravan(dir, &import)).contains("imported 0 new items (8 already present)"));
    let stranger = [
        "task",
        "import",
        &project,
        "--requester",
        "0x3C44CdDdB6a900fa2b585dd299e03d12FA4293BC",
        reviews,
    ];
    assert!(failure(&caravan(dir, &stranger)).contains("only the project's requester"));

    let status = ok(&caravan(dir, &["task", "status", &project]));
    assert!(
        status.contains("4 (4)") && status.contains("0 USDC / 50 USDC"),
        "{status}"
    );
    let balances = ok(&caravan(dir, &["balances", "--all"]));
    assert!(
        balances.contains("escrow of project") && balances.contains("50 USDC"),
        "{balances}"
    );

    let publish = [
        "task",
        "publish",
        &project,
        "--requester",
        requester,
        "--name",
        "reviews",
    ];
    assert!(failure(&caravan(dir, &publish)).contains("nothing to publish yet"));
    let export = failure(&caravan(dir, &["task", "export", &project]));
    assert!(export.contains("has not been published yet"), "{export}");
    let closed = ok(&caravan(
        dir,
        &["task", "close", &project, "--requester", requester],
    ));
    assert!(
        closed.contains("closed; 50 USDC released to the requester"),
        "{closed}"
    );
    let again = ok(&caravan(
        dir,
        &["task", "close", &project, "--requester", requester],
    ));
    assert!(again.contains("closed; 0 USDC released"), "{again}");
    let unknown = failure(&caravan(dir, &["task", "status", "0x1234"]));
    assert!(unknown.contains("is not a project id"), "{unknown}");
}

/// `caravan serve` answers over real loopback HTTP: the API document, and a 404 in the API's
/// error shape for a project that does not exist.
/// `caravan serve` on a free loopback port over `dir`: the child and its address. Kill it at
/// the end of the test.
fn start_serve(dir: &Path) -> (std::process::Child, String) {
    use std::io::{BufRead, BufReader};
    let mut server = Command::new(env!("CARGO_BIN_EXE_caravan"))
        .arg("--data-dir")
        .arg(dir)
        .args(["serve", "--listen", "127.0.0.1:0"])
        .env_remove("CARAVAN_DATABASE_URL")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let mut first_line = String::new();
    let mut stdout = BufReader::new(server.stdout.take().unwrap());
    stdout.read_line(&mut first_line).unwrap();
    // Keep reading, so the server never writes to a closed pipe.
    std::thread::spawn(move || std::io::copy(&mut stdout, &mut std::io::sink()));
    let address = first_line
        .split("http://")
        .nth(1)
        .and_then(|rest| rest.split_whitespace().next())
        .unwrap_or_else(|| panic!("no address in {first_line:?}"))
        .to_owned();
    (server, address)
}

/// The whole HTTP/1.1 answer to `GET path` with the extra header lines `headers` (each ending
/// in CRLF).
fn http_get(address: &str, path: &str, headers: &str) -> String {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect(address).unwrap();
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: x\r\n{headers}Connection: close\r\n\r\n"
    )
    .unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    response
}

#[test]
fn serve_answers_over_http() {
    let scratch = tempfile::tempdir().unwrap();
    let (mut server, address) = start_serve(scratch.path());
    let get = |path: &str| http_get(&address, path, "");
    let document = get("/v1/openapi.json");
    let missing = get(&format!("/v1/projects/0x{}", "00".repeat(32)));
    server.kill().unwrap();
    server.wait().unwrap();
    assert!(document.starts_with("HTTP/1.1 200"), "{document}");
    assert!(document.contains("\"openapi\":\"3.1.0\""), "{document}");
    assert!(missing.starts_with("HTTP/1.1 404"), "{missing}");
    assert!(
        missing.contains("\"code\":\"unknown_project\""),
        "{missing}"
    );
}

/// `caravan demo --serve` leaves a node over the demo's store running, at the address it prints,
/// and its pages answer there: the sign-in page, and the board for the signed-in only.
#[test]
fn the_demo_leaves_a_node_serving_its_store_for_a_browser() {
    use std::io::{BufRead, BufReader};
    let scratch = tempfile::tempdir().unwrap();
    let mut demo = Command::new(env!("CARGO_BIN_EXE_caravan"))
        .arg("--data-dir")
        .arg(scratch.path())
        .args([
            "demo",
            "--skip-labeling",
            "--calls",
            "200",
            "--serve",
            "127.0.0.1:0",
        ])
        .env_remove("CARAVAN_DATABASE_URL")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let mut stdout = BufReader::new(demo.stdout.take().unwrap());
    let mut line = String::new();
    while !line.starts_with("caravan listening on http://") {
        line.clear();
        assert_ne!(
            stdout.read_line(&mut line).unwrap(),
            0,
            "the demo ended without serving"
        );
    }
    std::thread::spawn(move || std::io::copy(&mut stdout, &mut std::io::sink()));
    let address = line["caravan listening on http://".len()..]
        .split_whitespace()
        .next()
        .unwrap()
        .to_owned();
    let sign_in = http_get(&address, "/sign-in", "");
    let board = http_get(&address, "/tasks", "");
    let epochs = http_get(&address, "/v1/epochs", "");
    let verified = http_send(&address, "POST", "/explorer/epochs/1/verify", "", "");
    let model = verified
        .split("href=\"/explorer/assets/")
        .nth(1)
        .and_then(|rest| rest.split('"').next())
        .unwrap_or_default()
        .to_owned();
    let lineage = http_get(&address, &format!("/explorer/assets/{model}"), "");
    demo.kill().unwrap();
    demo.wait().unwrap();
    assert!(
        verified.contains("Match: the root rebuilt from the bundle"),
        "the demo's epoch verifies in the explorer: {verified}"
    );
    assert!(
        verified.contains(">shop-assistant</a>"),
        "the epoch lists the assets that earned, the agent first: {verified}"
    );
    assert!(
        lineage.contains(r#"<svg class="lineage""#)
            && lineage.contains(r#"class="edge""#)
            && lineage.contains("COMPOSED_OF"),
        "the explorer draws the demo agent's lineage: {lineage}"
    );
    assert!(sign_in.starts_with("HTTP/1.1 200"), "{sign_in}");
    assert!(sign_in.contains("Sign in with your wallet"), "{sign_in}");
    assert!(board.starts_with("HTTP/1.1 303"), "{board}");
    assert!(
        epochs.contains("\"epoch\":1"),
        "the demo's closed epoch is served: {epochs}"
    );
}

/// `caravan serve` on a free loopback port over `dir` with `extra` arguments, everything it
/// writes (standard output and error) gathered for the test to read after it is killed.
fn start_logged_serve(
    dir: &Path,
    extra: &[&str],
    environment: &[(&str, &str)],
) -> (
    std::process::Child,
    String,
    std::sync::Arc<std::sync::Mutex<String>>,
) {
    use std::io::{BufRead, BufReader};
    let mut server = Command::new(env!("CARGO_BIN_EXE_caravan"))
        .arg("--data-dir")
        .arg(dir)
        .args(["serve", "--listen", "127.0.0.1:0"])
        .args(extra)
        .envs(environment.iter().copied())
        .env_remove("CARAVAN_DATABASE_URL")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let written = std::sync::Arc::new(std::sync::Mutex::new(String::new()));
    let mut stdout = BufReader::new(server.stdout.take().unwrap());
    let mut first_line = String::new();
    stdout.read_line(&mut first_line).unwrap();
    written.lock().unwrap().push_str(&first_line);
    let stderr = BufReader::new(server.stderr.take().unwrap());
    for mut stream in [
        Box::new(stdout) as Box<dyn BufRead + Send>,
        Box::new(stderr) as Box<dyn BufRead + Send>,
    ] {
        let written = std::sync::Arc::clone(&written);
        std::thread::spawn(move || {
            let mut line = String::new();
            while stream.read_line(&mut line).map(|n| n > 0).unwrap_or(false) {
                written.lock().unwrap().push_str(&line);
                line.clear();
            }
        });
    }
    let address = first_line
        .split("http://")
        .nth(1)
        .and_then(|rest| rest.split_whitespace().next())
        .unwrap_or_else(|| panic!("no address in {first_line:?}"))
        .to_owned();
    (server, address, written)
}

/// The whole HTTP/1.1 answer to `method path` with the extra header lines `headers` (each
/// ending in CRLF) and a JSON `body`.
fn http_send(address: &str, method: &str, path: &str, headers: &str, body: &str) -> String {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect(address).unwrap();
    write!(
        stream,
        "{method} {path} HTTP/1.1\r\nHost: x\r\n{headers}Content-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    response
}

/// The JSON body of an HTTP/1.1 answer.
fn body_of(response: &str) -> serde_json::Value {
    let body = response.split("\r\n\r\n").nth(1).unwrap_or_default();
    serde_json::from_str(body).unwrap_or(serde_json::Value::Null)
}

#[test]
fn no_key_session_id_or_signing_key_reaches_a_log_line_or_an_error_body() {
    let scratch = tempfile::tempdir().unwrap();
    let dir = scratch.path();
    let payer = "0x70997970C51812dc3A010C7d01b50e0d17dc79C8";
    register_usdc(dir, "0x5FbDB2315678afecb367f032d93F642f64180aa3");
    ok(&caravan(
        dir,
        &[
            "deposit",
            "--payer",
            payer,
            "--token",
            "0x5FbDB2315678afecb367f032d93F642f64180aa3",
            "--amount",
            "100",
        ],
    ));
    let (mut server, address, written) = start_logged_serve(dir, &["--access-log"], &[]);
    let node_key = std::fs::read_to_string(dir.join("node.key")).unwrap();
    let node_key = node_key.trim().trim_start_matches("0x").to_owned();
    let payer_key = dir.join("payer.key");
    std::fs::write(&payer_key, format!("0x{ANVIL_SECOND_KEY}\n")).unwrap();
    let mut answers = Vec::new();

    // An API key, issued with the payer's wallet, used and misused.
    let issued = caravan(
        dir,
        &[
            "key",
            "issue",
            "--scope",
            "models,requesting",
            "--node",
            &format!("http://{address}/v1"),
            "--key-file",
            payer_key.to_str().unwrap(),
        ],
    );
    let api_key = ok(&issued).trim().to_owned();
    answers.push(String::from_utf8_lossy(&issued.stderr).into_owned());
    let bogus_key = format!("crv_{}", "7".repeat(64));
    for key in [&api_key, &bogus_key] {
        answers.push(http_get(
            &address,
            "/v1/balance",
            &format!("Authorization: Bearer {key}\r\n"),
        ));
    }
    answers.push(http_send(
        &address,
        "POST",
        "/v1/chat/completions",
        &format!("Authorization: Bearer {api_key}\r\n"),
        "{\"model\": \"nope\", \"messages\": []}",
    ));

    // A session: the payer's wallet signs in, acts, and signs out; an unknown session is tried.
    let nonce = http_get(&address, &format!("/v1/auth/nonce?address={payer}"), "");
    let message = body_of(&nonce)["message"].as_str().unwrap().to_owned();
    let secret = caravan_core::attestation::parse_secret_key(ANVIL_SECOND_KEY).unwrap();
    let wallet = k256::ecdsa::SigningKey::from_bytes((&secret).into()).unwrap();
    let signature = caravan_core::attestation::sign_digest(
        &wallet,
        &caravan_core::attestation::personal_message_digest(message.as_bytes()),
    );
    let signed_in = http_send(
        &address,
        "POST",
        "/v1/auth/siwe",
        "",
        &serde_json::json!({ "message": message, "signature": signature.to_hex() }).to_string(),
    );
    assert!(signed_in.starts_with("HTTP/1.1 200"), "{signed_in}");
    let session = signed_in
        .lines()
        .find_map(|line| line.strip_prefix("set-cookie: caravan_session="))
        .and_then(|cookie| cookie.split(';').next())
        .unwrap_or_else(|| panic!("no session cookie in {signed_in}"))
        .to_owned();
    assert!(
        signed_in.contains("HttpOnly") && signed_in.contains("SameSite=Lax"),
        "{signed_in}"
    );
    let bogus_session = format!("crs_{}", "5".repeat(64));
    for cookie in [&session, &bogus_session] {
        answers.push(http_get(
            &address,
            "/v1/auth/session",
            &format!("Cookie: caravan_session={cookie}\r\n"),
        ));
        answers.push(http_send(
            &address,
            "POST",
            "/v1/projects",
            &format!("Cookie: caravan_session={cookie}\r\n"),
            "{\"spec\": {\"title\": \"incomplete\"}}",
        ));
    }
    answers.push(http_send(
        &address,
        "POST",
        "/v1/auth/logout",
        &format!("Cookie: caravan_session={session}\r\n"),
        "",
    ));
    answers.push(http_get(
        &address,
        "/v1/auth/session",
        &format!("Cookie: caravan_session={session}\r\n"),
    ));
    std::thread::sleep(std::time::Duration::from_millis(200));
    server.kill().unwrap();
    server.wait().unwrap();
    std::thread::sleep(std::time::Duration::from_millis(200));
    let logged = written.lock().unwrap().clone();

    // The log saw every request, and who made it.
    assert!(logged.contains("POST /v1/auth/siwe 200"), "{logged}");
    assert!(logged.contains("GET /v1/balance 200"), "{logged}");
    assert!(
        logged.contains("GET /v1/auth/session 200 ") && logged.contains(payer),
        "{logged}"
    );
    assert!(logged.contains("GET /v1/auth/session 401"), "{logged}");
    let secrets = [
        ("the API key", &api_key[4..]),
        ("a mistyped API key", &bogus_key[4..]),
        ("the session id", &session[4..]),
        ("an unknown session id", &bogus_session[4..]),
        ("the node's signing key", node_key.as_str()),
        ("the payer's wallet key", ANVIL_SECOND_KEY),
    ];
    for (what, secret) in secrets {
        assert!(!logged.contains(secret), "{what} is in the log:\n{logged}");
        for answer in &answers {
            assert!(
                !answer.contains(secret),
                "{what} is in an answer:\n{answer}"
            );
        }
    }
    assert!(answers.iter().any(|a| a.starts_with("HTTP/1.1 401")));
}

/// The venv python with the official `openai` client and LangChain
/// (`$CARAVAN_PYTHON_CLIENTS/bin/python`, else under `~/.cache/caravan/python-clients`); the test
/// fails, naming the install script, when it is not there.
fn python_clients() -> std::path::PathBuf {
    let python = cache_dir("CARAVAN_PYTHON_CLIENTS", "python-clients").join("bin/python");
    installed(
        python.exists(),
        format!("no {}", python.display()),
        "scripts/python-clients/install.sh",
    );
    python
}

/// The secret key of anvil's second development account, 0x70997970C51812dc3A010C7d01b50e0d17dc79C8.
const ANVIL_SECOND_KEY: &str = "59c6995e998f97a5a0044966f0945389dc9e86dae88c7a8412f4603b6b78690d";

#[test]
fn a_payer_issues_lists_and_revokes_its_api_keys_with_its_wallet_key() {
    let scratch = tempfile::tempdir().unwrap();
    let dir = scratch.path();
    let (mut server, address) = start_serve(dir);
    let node = format!("http://{address}/v1");
    let payer_key = dir.join("payer.key");
    std::fs::write(&payer_key, format!("0x{ANVIL_SECOND_KEY}\n")).unwrap();
    let stranger_key = dir.join("stranger.key");
    std::fs::write(&stranger_key, caravan_chain::anvil::ANVIL_DEV_KEY).unwrap();
    let key = |args: &[&str], key_file: &Path| {
        let mut all = vec!["key"];
        all.extend_from_slice(args);
        all.extend_from_slice(&["--node", &node, "--key-file", key_file.to_str().unwrap()]);
        caravan(dir, &all)
    };

    let issued = key(
        &[
            "issue",
            "--scope",
            "chat,models",
            "--expires-in-days",
            "30",
            "--name",
            "shop app",
        ],
        &payer_key,
    );
    // Standard output holds the key alone; the rest goes to standard error.
    let secret = ok(&issued);
    let secret = secret.trim();
    assert!(secret.starts_with("crv_") && secret.len() == 68, "{secret}");
    let told = String::from_utf8_lossy(&issued.stderr);
    assert!(
        told.contains("0x70997970C51812dc3A010C7d01b50e0d17dc79C8"),
        "{told}"
    );
    assert!(
        told.contains("models, chat") && told.contains("expires: 20"),
        "{told}"
    );

    let listed = ok(&key(&["list"], &payer_key));
    assert!(
        listed.contains("shop app") && listed.contains("models, chat"),
        "{listed}"
    );
    assert!(!listed.contains(&secret[4..]), "{listed}");
    let id = listed
        .split_whitespace()
        .find(|word| word.starts_with("key_"))
        .unwrap_or_else(|| panic!("no key id in {listed}"))
        .to_owned();
    // Another wallet sees none of the payer's keys and cannot revoke them.
    let theirs = ok(&key(&["list"], &stranger_key));
    assert!(theirs.contains("no live API keys"), "{theirs}");
    let refused = failure(&key(&["revoke", &id], &stranger_key));
    assert!(refused.contains("has no live key"), "{refused}");
    let malformed = failure(&key(&["revoke", "key_../../x"], &payer_key));
    assert!(malformed.contains("is not a key id"), "{malformed}");

    // The key works until its payer revokes it.
    let balance = |secret: &str| {
        http_get(
            &address,
            "/v1/balance",
            &format!("Authorization: Bearer {secret}\r\n"),
        )
    };
    assert!(
        balance(secret).starts_with("HTTP/1.1 200"),
        "{}",
        balance(secret)
    );
    let revoked = ok(&key(&["revoke", &id], &payer_key));
    assert!(revoked.contains(&id), "{revoked}");
    assert!(balance(secret).contains("invalid_api_key"));
    let after = ok(&key(&["list"], &payer_key));
    assert!(after.contains("no live API keys"), "{after}");
    server.kill().unwrap();
    server.wait().unwrap();

    let gone = failure(&key(&["list"], &payer_key));
    assert!(
        gone.contains("cannot reach the node") && gone.contains("--node"),
        "{gone}"
    );
}

#[test]
fn the_openai_and_langchain_clients_work_unchanged_against_the_gateway() {
    let python = python_clients();
    let scratch = tempfile::tempdir().unwrap();
    let dir = scratch.path();
    let usdc = "0x5FbDB2315678afecb367f032d93F642f64180aa3";
    let payer = "0x70997970C51812dc3A010C7d01b50e0d17dc79C8";
    let developer = "0x1111111111111111111111111111111111111111";
    register_usdc(dir, usdc);
    ok(&caravan(
        dir,
        &[
            "deposit", "--payer", payer, "--token", usdc, "--amount", "1",
        ],
    ));
    let upstream_port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let url = format!("http://127.0.0.1:{upstream_port}/v1");
    let registered = ok(&caravan(
        dir,
        &[
            "model",
            "upstream",
            "--name",
            "chat-small",
            "--developer",
            developer,
            "--url",
            &url,
            "--upstream-model",
            "echo-1",
            "--token",
            usdc,
            "--price",
            "0.001",
            "--prompt-price",
            "0.5",
            "--completion-price",
            "1.5",
        ],
    ));
    assert!(registered.contains("forwards to"), "{registered}");
    let chat = model_id(&registered);
    let agent = ok(&caravan(
        dir,
        &[
            "model",
            "agent",
            "--name",
            "helper",
            "--owner",
            developer,
            "--chat",
            &chat,
            "--system",
            "Be brief.",
            "--token",
            usdc,
            "--price",
            "0.0005",
        ],
    ));
    assert!(agent.starts_with("agent asset "), "{agent}");
    // The embedding model: 0.0001 USDC per call and 1 USDC per million tokens (100 base units
    // and one per token).
    let models_dir = installed_models_dir();
    let models_dir = models_dir.to_str().unwrap();
    let embedder = ok(&caravan(
        dir,
        &[
            "--models-dir",
            models_dir,
            "model",
            "embedder",
            "--name",
            "minilm",
            "--developer",
            developer,
            "--token",
            usdc,
            "--price",
            "0.0001",
            "--token-price",
            "1",
        ],
    ));
    assert!(embedder.contains("/v1/embeddings as minilm"), "{embedder}");
    let embedding_args: Vec<String> = vec![
        "--embedding-model".into(),
        "minilm".into(),
        "--models-dir".into(),
        models_dir.into(),
    ];
    let (mut server, address) = start_serve(dir);
    let payer_key = dir.join("payer.key");
    std::fs::write(&payer_key, ANVIL_SECOND_KEY).unwrap();
    let api_key = ok(&caravan(
        dir,
        &[
            "key",
            "issue",
            "--node",
            &format!("http://{address}"),
            "--key-file",
            payer_key.to_str().unwrap(),
            "--name",
            "python clients",
        ],
    ));
    let check = Command::new(&python)
        .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("../../scripts/python-clients/check.py"))
        .args([
            "--gateway",
            &format!("http://{address}/v1"),
            "--api-key",
            api_key.trim(),
            "--payer",
            payer,
        ])
        .args([
            "--model",
            "chat-small",
            "--upstream-port",
            &upstream_port.to_string(),
        ])
        .args(["--agent", "helper"])
        .args(&embedding_args)
        .output()
        .unwrap();
    server.kill().unwrap();
    server.wait().unwrap();
    let out = ok(&check);
    for step in [
        "models.list",
        "chat.completions.create",
        "\"stream\"",
        "stream.include_usage",
        "idempotent retry",
        "AuthenticationError",
        "NotFoundError",
        "\"agent\"",
        "langchain ChatOpenAI",
    ] {
        assert!(out.contains(step), "{step} missing from {out}");
    }
    // Six calls to the model were charged (the idempotent retry once): each 1,000 per call plus
    // ceil(9 × 0.5) + ceil(3 × 1.5) = 1,010 base units; the agent's call cost its own 500 plus
    // its chat model's 1,010: 7,570 in all. 1 USDC = 1,000,000 base units.
    let mut spent = 7_570;
    for step in [
        "embeddings.create",
        "float and token ids",
        "BadRequestError",
        "langchain OpenAIEmbeddings",
    ] {
        assert!(out.contains(step), "{step} missing from {out}");
    }
    let line = out
        .lines()
        .find(|l| l.contains("\"embeddings charged\""))
        .unwrap();
    let figures: serde_json::Value = serde_json::from_str(line).unwrap();
    let embedding_spend = figures["spent"].as_u64().unwrap();
    assert!(embedding_spend > 500, "{line}");
    spent += embedding_spend;
    let balances = ok(&caravan(dir, &["balances", "--account", payer]));
    let left = format!("{}", 1_000_000 - spent);
    let expected = format!("0.{left:0>6}").trim_end_matches('0').to_owned();
    assert!(
        balances.contains(&format!("{expected} USDC")),
        "{expected} in {balances}"
    );
}

/// The folder holding all-MiniLM-L6-v2; the test fails, naming the install script, when the
/// model is not there.
fn installed_models_dir() -> std::path::PathBuf {
    let dir = caravan_models::embedding::default_models_dir();
    installed(
        dir.join("all-MiniLM-L6-v2/model.safetensors").is_file(),
        format!("all-MiniLM-L6-v2 not in {}", dir.display()),
        "scripts/models/install.sh",
    );
    dir
}

/// A store whose first epoch pays the example dataset's contributors in the development token;
/// returns one contributor's address.
fn store_with_a_closed_epoch(dir: &Path) -> &'static str {
    let labeler = "0xdbF03B407c01E7cD3CBea99509d93f8DDDC8C6FB";
    let asset = store_with_paid_asset(dir);
    pay_and_close(dir, &asset, labeler);
    labeler
}

/// Ten more paid calls to `asset` (served by `node`), then an epoch close.
fn pay_and_close(dir: &Path, asset: &str, node: &str) {
    let token = "0x5FbDB2315678afecb367f032d93F642f64180aa3";
    let payer = "0x70997970C51812dc3A010C7d01b50e0d17dc79C8";
    ok(&caravan(
        dir,
        &[
            "deposit", "--payer", payer, "--token", token, "--amount", "100",
        ],
    ));
    ok(&caravan(
        dir,
        &[
            "usage", "record", "--asset", asset, "--payer", payer, "--node", node, "--calls", "10",
        ],
    ));
    ok(&caravan(dir, &["epoch", "close"]));
}

/// A store with the example dataset registered, priced in the development token; returns its id.
fn store_with_paid_asset(dir: &Path) -> String {
    let token = "0x5FbDB2315678afecb367f032d93F642f64180aa3";
    let examples = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples");
    let manifest = std::fs::read_to_string(examples.join("dataset.json"))
        .unwrap()
        .replace("0xfB6916095ca1df60bB79Ce92cE3Ea74c37c5d359", token);
    let manifest_path = dir.join("dataset.json");
    std::fs::write(&manifest_path, manifest).unwrap();
    register_usdc(dir, token);
    let registered = ok(&caravan(
        dir,
        &[
            "asset",
            "register",
            "--manifest",
            manifest_path.to_str().unwrap(),
        ],
    ));
    registered
        .split_whitespace()
        .find(|w| w.starts_with("0x") && w.len() == 66)
        .unwrap()
        .to_owned()
}

/// Close → post on the embedded chain → claim (twice: the second pays nothing) → verify.
#[test]
fn an_epoch_is_posted_claimed_and_verified_on_the_embedded_chain() {
    let scratch = tempfile::tempdir().unwrap();
    let dir = scratch.path();
    let labeler = store_with_a_closed_epoch(dir);
    let early = failure(&caravan(dir, &["claim", "--account", labeler]));
    assert!(early.contains("no root is active on embedded"), "{early}");

    let posted = ok(&caravan(dir, &["epoch", "post"]));
    assert!(
        posted.contains("posted epoch 1's root") && posted.contains("activated"),
        "{posted}"
    );
    assert!(ok(&caravan(dir, &["epoch", "post"])).contains("already posted"));
    let first = ok(&caravan(dir, &["claim", "--account", labeler]));
    assert!(first.contains("0.016875 USDC ┆ 0.016875 USDC │"), "{first}");
    let transactions = || {
        std::fs::read_to_string(dir.join("chains/embedded/transactions.jsonl"))
            .unwrap()
            .lines()
            .count()
    };
    let sent_before = transactions();
    let second = ok(&caravan(dir, &["claim", "--account", labeler]));
    assert!(second.contains("0 USDC ┆ 0.016875 USDC │"), "{second}");
    assert!(
        second.contains("nothing to claim") && second.contains("no transaction sent"),
        "{second}"
    );
    assert_eq!(
        transactions(),
        sent_before,
        "a claim that would pay nothing is not sent"
    );

    let verified = ok(&caravan(dir, &["verify", "--epoch", "1"]));
    assert!(verified.starts_with("match: epoch 1's root"), "{verified}");
    let usdc = "0x5FbDB2315678afecb367f032d93F642f64180aa3";
    let funded = ok(&caravan(
        dir,
        &[
            "chain", "fund", "embedded", "--token", usdc, "--amount", "5",
        ],
    ));
    assert!(
        funded.contains("funded the distributor 0x") && funded.contains("with 5 USDC;"),
        "{funded}"
    );
    let anchored = ok(&caravan(dir, &["asset", "anchor"]));
    assert!(anchored.contains("anchored 1 assets"), "{anchored}");
    let again = ok(&caravan(dir, &["asset", "anchor"]));
    assert!(
        again.contains("anchored 0 assets") && again.contains("(1 were there already)"),
        "{again}"
    );
    let bundle = dir.join("epoch-1.json");
    ok(&caravan(
        dir,
        &["epoch", "show", "1", "--out", bundle.to_str().unwrap()],
    ));
    let text = std::fs::read_to_string(&bundle).unwrap();
    let mut value: serde_json::Value = serde_json::from_str(&text).unwrap();
    value["leaves"][0]["cumulative"] = serde_json::json!("1");
    std::fs::write(&bundle, value.to_string()).unwrap();
    let refused = failure(&caravan(
        dir,
        &[
            "verify",
            "--epoch",
            "1",
            "--bundle",
            bundle.to_str().unwrap(),
        ],
    ));
    assert!(
        refused.contains("the bundle does not check out"),
        "{refused}"
    );
    assert!(
        failure(&caravan(dir, &["epoch", "post", "--chain", "mainnet"]))
            .contains("no chain is called \"mainnet\"; it pays on embedded (chain id 6513010, home); add one with `caravan chain add mainnet")
    );
}

/// anvil from npm started on a free port (the test fails, naming the install script, when it is
/// not installed).
fn local_anvil() -> caravan_chain::anvil::LocalAnvil {
    caravan_chain::anvil::LocalAnvil::start(&caravan_chain::anvil::installed_for_tests()).unwrap()
}

/// A contract wallet (an ERC-1271 OwnedWallet deployed on anvil) signs in to a node that has
/// anvil configured as a chain: the node asks the wallet's contract whether its owner's
/// signature is the wallet's, and opens a session for the contract's address.
#[test]
fn a_contract_wallet_signs_in_through_the_chain_it_lives_on() {
    use alloy_sol_types::SolConstructor;
    use caravan_chain::chain::Chain;
    use caravan_core::attestation::{address_of, personal_message_digest, sign_digest};
    let anvil = local_anvil();
    let scratch = tempfile::tempdir().unwrap();
    let dir = scratch.path();
    let owner =
        k256::ecdsa::SigningKey::from_bytes((&caravan_core::keccak256(b"safe owner").0).into())
            .unwrap();
    let mut code = caravan_chain::contracts::OwnedWallet::BYTECODE.to_vec();
    code.extend(
        caravan_chain::contracts::OwnedWallet::constructorCall {
            owner_: alloy_primitives::Address::from(address_of(owner.verifying_key()).0),
        }
        .abi_encode(),
    );
    let wallet = anvil
        .connect()
        .unwrap()
        .send(0, None, code.into())
        .unwrap()
        .unwrap()
        .created
        .unwrap();
    let wallet = caravan_core::Address(wallet.into_array());
    ok(&caravan_with_chain_key(
        dir,
        &[
            "chain",
            "add",
            "local",
            "--url",
            anvil.url(),
            "--chain-id",
            "31337",
            "--key-env",
            "CARAVAN_TEST_CHAIN_KEY",
        ],
    ));
    let (mut server, address) = start_serve(dir);
    let sign_in = |signer: &k256::ecdsa::SigningKey| {
        let nonce = http_get(
            &address,
            &format!("/v1/auth/nonce?address={wallet}&chain_id=31337"),
            "",
        );
        let message = body_of(&nonce)["message"].as_str().unwrap().to_owned();
        let signature = sign_digest(signer, &personal_message_digest(message.as_bytes()));
        http_send(
            &address,
            "POST",
            "/v1/auth/siwe",
            "",
            &serde_json::json!({ "message": message, "signature": signature.to_hex() }).to_string(),
        )
    };
    let stranger =
        k256::ecdsa::SigningKey::from_bytes((&caravan_core::keccak256(b"stranger").0).into())
            .unwrap();
    let refused = sign_in(&stranger);
    let signed_in = sign_in(&owner);
    server.kill().unwrap();
    server.wait().unwrap();
    assert!(refused.starts_with("HTTP/1.1 401"), "{refused}");
    assert_eq!(body_of(&refused)["error"]["code"], "wrong_signer");
    assert!(signed_in.starts_with("HTTP/1.1 200"), "{signed_in}");
    assert_eq!(
        body_of(&signed_in)["account"],
        serde_json::json!(wallet),
        "{signed_in}"
    );
}

/// The same flow on a JSON-RPC chain reached over HTTPS, as public chains are: anvil from npm,
/// started here on a free port, behind a TLS front whose certificate authority the node is
/// told to trust with `CARAVAN_EXTRA_CA_CERTS`.
#[test]
fn an_epoch_is_posted_and_claimed_on_a_json_rpc_chain() {
    let node = local_anvil();
    let fronts = tokio::runtime::Runtime::new().unwrap();
    let front = fronts.block_on(caravan_testkit::TlsFront::start(node.address()));
    let scratch = tempfile::tempdir().unwrap();
    let dir = scratch.path();
    let labeler = store_with_a_closed_epoch(dir);
    let url = front.url("");
    let key = caravan_chain::anvil::ANVIL_DEV_KEY;
    let authority = scratch.path().join("test-ca.pem");
    std::fs::write(&authority, front.ca_pem()).unwrap();
    let with_key = |args: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_caravan"))
            .arg("--data-dir")
            .arg(dir)
            .args(args)
            .env("CARAVAN_TEST_CHAIN_KEY", key)
            .env("CARAVAN_EXTRA_CA_CERTS", &authority)
            .env_remove("CARAVAN_DATABASE_URL")
            .output()
            .expect("run caravan")
    };
    let add = [
        "chain",
        "add",
        "local",
        "--url",
        &url,
        "--chain-id",
        "31337",
        "--key-env",
        "CARAVAN_TEST_CHAIN_KEY",
    ];
    // Without the authority the certificate is refused, with what to do about it.
    let untrusted = failure(&caravan_with_chain_key(dir, &add));
    assert!(
        untrusted.contains("UnknownIssuer") && untrusted.contains("--extra-ca-certs"),
        "{untrusted}"
    );
    let not_pem = scratch.path().join("not-a-certificate.pem");
    std::fs::write(&not_pem, "hello").unwrap();
    let mut with_bad_file = vec!["--extra-ca-certs", not_pem.to_str().unwrap()];
    with_bad_file.extend(add);
    let refused = failure(&caravan_with_chain_key(dir, &with_bad_file));
    assert!(
        refused.contains("not-a-certificate.pem") && refused.contains("BEGIN CERTIFICATE"),
        "{refused}"
    );
    let added = with_key(&add);
    assert!(ok(&added).contains("the node signs as 0xf39Fd6e51aad88F6F4ce6aB8827279cffFb92266"));
    assert!(
        !std::fs::read_to_string(dir.join("chains/local/chain.json"))
            .unwrap()
            .contains(&key[2..]),
        "the key is never stored"
    );
    assert!(ok(&with_key(&["chain", "list"])).contains(&url));
    let idle = ok(&with_key(&["epoch", "post", "--chain", "local"]));
    assert!(
        idle.contains("nobody is paid on local in epoch 1"),
        "{idle}"
    );
    let home = ok(&with_key(&["chain", "home", "local"]));
    assert!(
        home.contains("local (chain id 31337) is now the home chain"),
        "{home}"
    );

    let posted = ok(&with_key(&["epoch", "post", "--chain", "local"]));
    assert!(
        posted.contains("posted epoch 1's root") && posted.contains("activated"),
        "{posted}"
    );
    let claimed = ok(&with_key(&[
        "claim",
        "--account",
        labeler,
        "--chain",
        "local",
    ]));
    assert!(
        claimed.contains("0.016875 USDC ┆ 0.016875 USDC │"),
        "{claimed}"
    );
    let verified = ok(&with_key(&["verify", "--epoch", "1", "--chain", "local"]));
    assert!(verified.starts_with("match:"), "{verified}");
    let no_key = failure(&caravan(
        dir,
        &["claim", "--account", labeler, "--chain", "local"],
    ));
    assert!(no_key.contains("set CARAVAN_TEST_CHAIN_KEY"), "{no_key}");
}

/// Signs `wallet` in to the node at `address` with a message naming `chain_id`: the whole
/// answer, whose cookie (see [`session_cookie`]) carries the session.
fn sign_in_over_http(address: &str, wallet: &k256::ecdsa::SigningKey, chain_id: u64) -> String {
    use caravan_core::attestation::{address_of, personal_message_digest, sign_digest};
    let account = address_of(wallet.verifying_key());
    let nonce = http_get(
        address,
        &format!("/v1/auth/nonce?address={account}&chain_id={chain_id}"),
        "",
    );
    let message = body_of(&nonce)["message"]
        .as_str()
        .unwrap_or_else(|| panic!("no message in {nonce}"))
        .to_owned();
    let signature = sign_digest(wallet, &personal_message_digest(message.as_bytes()));
    http_send(
        address,
        "POST",
        "/v1/auth/siwe",
        "",
        &serde_json::json!({ "message": message, "signature": signature.to_hex() }).to_string(),
    )
}

/// The `Cookie` header line that carries the session a sign-in answer set.
fn session_cookie(signed_in: &str) -> String {
    let session = signed_in
        .lines()
        .find_map(|line| line.strip_prefix("set-cookie: caravan_session="))
        .and_then(|cookie| cookie.split(';').next())
        .unwrap_or_else(|| panic!("no session cookie in {signed_in}"));
    format!("Cookie: caravan_session={session}\r\n")
}

/// An operator manages the chains of a node that keeps serving, over HTTP: adds anvil (with
/// the key the node holds in its environment, never sent), makes it home, and posts a closed
/// epoch's root there; anyone may then sign in on the new chain, and the root on chain is the
/// one the store rebuilds. Someone who is not an operator is refused every step.
#[test]
fn an_operator_adds_a_chain_and_posts_a_root_over_http_while_the_node_serves() {
    let anvil = local_anvil();
    let scratch = tempfile::tempdir().unwrap();
    let dir = scratch.path();
    store_with_a_closed_epoch(dir);
    let operator =
        k256::ecdsa::SigningKey::from_bytes((&caravan_core::keccak256(b"operator").0).into())
            .unwrap();
    let stranger =
        k256::ecdsa::SigningKey::from_bytes((&caravan_core::keccak256(b"stranger").0).into())
            .unwrap();
    let operator_address =
        caravan_core::attestation::address_of(operator.verifying_key()).to_string();
    let (mut server, address, _) = start_logged_serve(
        dir,
        &["--operator", &operator_address],
        &[(
            "CARAVAN_TEST_CHAIN_KEY",
            caravan_chain::anvil::ANVIL_DEV_KEY,
        )],
    );
    let embedded = caravan_chain::embedded::EMBEDDED_CHAIN_ID;
    let as_operator = session_cookie(&sign_in_over_http(&address, &operator, embedded));
    let as_stranger = session_cookie(&sign_in_over_http(&address, &stranger, embedded));
    let send = |method: &str, path: &str, who: &str, body: serde_json::Value| {
        let answer = http_send(&address, method, path, who, &body.to_string());
        let status: u16 = answer[9..12].parse().unwrap();
        (status, body_of(&answer))
    };
    let local = serde_json::json!({ "name": "local", "url": anvil.url(), "chain_id": 31337,
        "key_env": "CARAVAN_TEST_CHAIN_KEY" });

    let refused = [
        send("POST", "/v1/chains", &as_stranger, local.clone()),
        send(
            "PUT",
            "/v1/chains/home",
            &as_stranger,
            serde_json::json!({ "name": "local" }),
        ),
        send(
            "POST",
            "/v1/epochs/1/roots",
            &as_stranger,
            serde_json::json!({}),
        ),
    ];
    let unset_key = send(
        "POST",
        "/v1/chains",
        &as_operator,
        serde_json::json!({ "name": "local", "url": anvil.url(), "chain_id": 31337,
            "key_env": "CARAVAN_NO_SUCH_KEY" }),
    );
    let too_early = sign_in_over_http(&address, &stranger, 31337);
    let added = send("POST", "/v1/chains", &as_operator, local);
    let listed = send("GET", "/v1/chains", "", serde_json::json!({}));
    let on_the_new_chain = sign_in_over_http(&address, &stranger, 31337);
    let nobody_there = send(
        "POST",
        "/v1/epochs/1/roots",
        &as_operator,
        serde_json::json!({ "chain": "local" }),
    );
    let home = send(
        "PUT",
        "/v1/chains/home",
        &as_operator,
        serde_json::json!({ "name": "local" }),
    );
    let posted = send(
        "POST",
        "/v1/epochs/1/roots",
        &as_operator,
        serde_json::json!({}),
    );
    let again = send(
        "POST",
        "/v1/epochs/1/roots",
        &as_operator,
        serde_json::json!({}),
    );
    let back_home = send(
        "PUT",
        "/v1/chains/home",
        &as_operator,
        serde_json::json!({ "name": "embedded" }),
    );
    let not_closed = send(
        "POST",
        "/v1/epochs/7/roots",
        &as_operator,
        serde_json::json!({}),
    );
    let unknown = send(
        "POST",
        "/v1/epochs/1/roots",
        &as_operator,
        serde_json::json!({ "chain": "mainnet" }),
    );
    server.kill().unwrap();
    server.wait().unwrap();

    for (status, body) in &refused {
        assert_eq!(*status, 403, "{body}");
        assert_eq!(body["error"]["code"], "not_operator", "{body}");
    }
    assert_eq!(unset_key.0, 422, "{}", unset_key.1);
    assert!(
        unset_key.1["error"]["message"]
            .as_str()
            .unwrap()
            .contains("set CARAVAN_NO_SUCH_KEY to the signer key"),
        "{}",
        unset_key.1
    );
    assert!(too_early.starts_with("HTTP/1.1 4"), "{too_early}");
    assert!(too_early.contains("31337"), "{too_early}");
    assert_eq!(added.0, 201, "{}", added.1);
    assert_eq!(
        added.1["signer"], "0xf39fd6e51aad88f6f4ce6ab8827279cfffb92266",
        "the node signs with the key in its environment"
    );
    assert_eq!(added.1["chain"]["home"], false);
    let names: Vec<&str> = listed
        .1
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["embedded", "local"], "{}", listed.1);
    assert!(
        on_the_new_chain.starts_with("HTTP/1.1 200"),
        "{on_the_new_chain}"
    );
    assert_eq!(nobody_there.0, 200, "{}", nobody_there.1);
    assert_eq!(nobody_there.1["posted"], false);
    assert_eq!(home.0, 200, "{}", home.1);
    assert_eq!(home.1["home"], true);
    assert_eq!(posted.0, 201, "{}", posted.1);
    assert_eq!(posted.1["posted"], true);
    assert_eq!(posted.1["chain"]["name"], "local");
    assert_eq!(posted.1["activated"], true, "no delay: claims open at once");
    assert_eq!(again.0, 200, "{}", again.1);
    assert_eq!(again.1["posted"], false);
    assert_eq!(again.1["active"], 1);
    assert_eq!(back_home.0, 409, "{}", back_home.1);
    assert!(
        back_home.1["error"]["message"]
            .as_str()
            .unwrap()
            .contains("roots are already posted on local"),
        "{}",
        back_home.1
    );
    assert_eq!(not_closed.0, 404, "{}", not_closed.1);
    assert_eq!(not_closed.1["error"]["code"], "unknown_epoch");
    assert_eq!(unknown.0, 404, "{}", unknown.1);
    assert_eq!(unknown.1["error"]["code"], "unknown_chain");

    let verified = ok(&caravan_with_chain_key(
        dir,
        &["verify", "--epoch", "1", "--chain", "local"],
    ));
    assert!(verified.starts_with("match:"), "{verified}");
    assert!(
        verified.contains(posted.1["root"].as_str().unwrap()),
        "the root posted over HTTP is the one the store rebuilds: {verified}"
    );
}

/// The cells of the USDC row of a claim's table.
fn claim_row(output: &str) -> Vec<String> {
    let line = output
        .lines()
        .find(|l| l.starts_with("│ USDC"))
        .unwrap_or_else(|| panic!("no USDC row in:\n{output}"));
    line.trim_matches('│')
        .split('┆')
        .map(|cell| cell.trim().to_string())
        .collect()
}

/// A contributor paid on the embedded home chain moves to a JSON-RPC chain: what they earned
/// before stays claimable at home, what they earn after is posted and claimed on the new chain.
#[test]
fn a_contributor_is_paid_on_the_chain_they_choose() {
    let scratch = tempfile::tempdir().unwrap();
    let dir = scratch.path();
    let asset = store_with_paid_asset(dir);
    let labeler = "0xdbF03B407c01E7cD3CBea99509d93f8DDDC8C6FB";
    pay_and_close(dir, &asset, labeler);
    let shown = ok(&caravan(dir, &["payout-chain", "--account", labeler]));
    assert!(
        shown.contains("is paid on embedded (chain id 6513010, home)"),
        "{shown}"
    );
    let unknown = failure(&caravan(
        dir,
        &["payout-chain", "--account", labeler, "--chain", "base"],
    ));
    assert!(
        unknown.contains("no chain is called \"base\"; it pays on embedded"),
        "{unknown}"
    );
    ok(&caravan(dir, &["epoch", "post"]));
    ok(&caravan(dir, &["claim", "--account", labeler]));

    let node = local_anvil();
    let with_key = |args: &[&str]| caravan_with_chain_key(dir, args);
    let url = node.url().to_owned();
    let add = [
        "chain",
        "add",
        "local",
        "--url",
        &url,
        "--chain-id",
        "31337",
        "--key-env",
        "CARAVAN_TEST_CHAIN_KEY",
    ];
    ok(&with_key(&add));
    let listed = ok(&with_key(&["chain", "list"]));
    assert!(
        listed.contains("31337") && listed.contains("home"),
        "{listed}"
    );
    let twin = failure(&with_key(&[
        "chain",
        "add",
        "twin",
        "--url",
        &url,
        "--chain-id",
        "31337",
        "--key-env",
        "CARAVAN_TEST_CHAIN_KEY",
    ]));
    assert!(twin.contains("already configured as local"), "{twin}");
    let rehome = failure(&with_key(&["chain", "home", "local"]));
    assert!(
        rehome.contains("roots are already posted on embedded"),
        "{rehome}"
    );

    let chosen = ok(&with_key(&[
        "payout-chain",
        "--account",
        labeler,
        "--chain",
        "local",
    ]));
    assert!(
        chosen.contains("is paid on local (chain id 31337) from now on")
            && chosen.contains("stays claimable on embedded"),
        "{chosen}"
    );
    pay_and_close(dir, &asset, labeler);
    let shown = ok(&caravan(dir, &["epoch", "show", "2", "--account", labeler]));
    assert!(
        shown.contains("on the home chain") && shown.contains("on chain id 31337"),
        "{shown}"
    );

    // Home still pays the first epoch's earnings; the new chain pays the second's.
    ok(&with_key(&["epoch", "post"]));
    let home = ok(&with_key(&["claim", "--account", labeler]));
    assert_eq!(
        claim_row(&home),
        [
            "USDC",
            "0.016875 USDC",
            "0.016875 USDC",
            "0 USDC",
            "0.016875 USDC"
        ],
        "entitled, claimed before, paid now, balance:\n{home}"
    );
    let posted = ok(&with_key(&["epoch", "post", "--chain", "local"]));
    assert!(posted.contains("chain id 31337; 1 leaves"), "{posted}");
    let moved = ok(&with_key(&[
        "claim",
        "--account",
        labeler,
        "--chain",
        "local",
    ]));
    assert_eq!(
        claim_row(&moved),
        [
            "USDC",
            "0.016875 USDC",
            "0 USDC",
            "0.016875 USDC",
            "0.016875 USDC"
        ],
        "entitled, claimed before, paid now, balance:\n{moved}"
    );
    for chain in ["embedded", "local"] {
        let verified = ok(&with_key(&["verify", "--epoch", "2", "--chain", chain]));
        assert!(verified.starts_with("match:"), "{chain}: {verified}");
    }
    let stranger = "0x70997970C51812dc3A010C7d01b50e0d17dc79C8";
    let none = failure(&with_key(&[
        "claim",
        "--account",
        stranger,
        "--chain",
        "local",
    ]));
    assert!(none.contains("`caravan payout-chain --account"), "{none}");
}

/// With a delay, a posted root is not claimable until it is activated after the delay.
#[test]
fn a_delayed_root_waits_before_claims_open() {
    let scratch = tempfile::tempdir().unwrap();
    let dir = scratch.path();
    let deployed = ok(&caravan(
        dir,
        &["chain", "deploy", "embedded", "--delay", "3600"],
    ));
    assert!(
        deployed.contains("(3600 s delay), deposit vault 0x"),
        "{deployed}"
    );
    let labeler = store_with_a_closed_epoch(dir);
    let posted = ok(&caravan(dir, &["epoch", "post"]));
    assert!(
        posted.contains("claimable once its 3600 s delay is over"),
        "{posted}"
    );
    let early = failure(&caravan(dir, &["claim", "--account", labeler]));
    assert!(early.contains("waits out its delay"), "{early}");
    let activate = failure(&caravan(dir, &["epoch", "activate"]));
    assert!(activate.contains("PendingInDelay"), "{activate}");
    let other_delay = failure(&caravan(dir, &["epoch", "post", "--delay", "60"]));
    assert!(
        other_delay.contains("deployed with a 3600 s delay"),
        "{other_delay}"
    );
}

/// Waits up to a minute for `written` to contain `wanted`; everything written so far when it
/// does not.
fn wait_for(written: &std::sync::Mutex<String>, wanted: &str) -> Result<(), String> {
    for _ in 0..600 {
        if written.lock().unwrap().contains(wanted) {
            return Ok(());
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    Err(written.lock().unwrap().clone())
}

/// A node serving with `--epoch-every` closes the epoch in which calls were paid, writes its
/// bundle and posts and activates its root on the home chain by itself; meanwhile the read
/// commands work on the same data directory (a writer is still refused), and a restarted node
/// posts nothing twice.
#[test]
fn a_serving_node_closes_and_posts_epochs_on_schedule_while_read_commands_run_beside_it() {
    let scratch = tempfile::tempdir().unwrap();
    let dir = scratch.path();
    let asset = store_with_paid_asset(dir);
    let token = "0x5FbDB2315678afecb367f032d93F642f64180aa3";
    let payer = "0x70997970C51812dc3A010C7d01b50e0d17dc79C8";
    let node = "0xdbF03B407c01E7cD3CBea99509d93f8DDDC8C6FB";
    ok(&caravan(
        dir,
        &[
            "deposit", "--payer", payer, "--token", token, "--amount", "100",
        ],
    ));
    let record = [
        "usage", "record", "--asset", &asset, "--payer", payer, "--node", node, "--calls", "10",
    ];
    ok(&caravan(dir, &record));

    let (mut server, _, written) = start_logged_serve(dir, &["--epoch-every", "1s"], &[]);
    let settled = wait_for(&written, "claims are open");
    let balances = caravan(dir, &["balances", "--account", node]);
    let shown = caravan(dir, &["epoch", "show"]);
    let listed = caravan(dir, &["asset", "list"]);
    let asset_shown = caravan(dir, &["asset", "show", &asset]);
    let verified = caravan(dir, &["log", "verify"]);
    let writer = caravan(dir, &record);
    let newcomer = "0x3C44CdDdB6a900fa2b585dd299e03d12FA4293BC";
    let topped_up = caravan(
        dir,
        &[
            "deposit", "--payer", newcomer, "--token", token, "--amount", "7",
        ],
    );
    let mut credited = String::new();
    for _ in 0..100 {
        credited = ok(&caravan(dir, &["balances", "--account", newcomer]));
        if credited.contains("7 USDC") {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    // The deposit is news: the next round closes and posts epoch 2 with it.
    let second = wait_for(&written, "epoch 2's root");
    server.kill().unwrap();
    server.wait().unwrap();
    let log = written.lock().unwrap().clone();
    settled.unwrap_or_else(|log| panic!("no root was activated:\n{log}"));
    second.unwrap_or_else(|log| panic!("the epoch with the deposit was not posted:\n{log}"));
    assert!(log.contains("epoch 1 closed: root 0x"), "{log}");
    assert!(
        log.contains("epoch 1's root 0x") && log.contains("posted on embedded"),
        "{log}"
    );
    assert!(!log.contains("failed"), "{log}");
    let bundle: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.join("epochs/epoch-1.json")).unwrap()).unwrap();
    assert_eq!(bundle["epoch"], 1);

    assert!(ok(&balances).contains("USDC"), "{}", ok(&balances));
    assert!(
        ok(&shown).contains(&format!(
            "epoch 1  root {}",
            bundle["root"].as_str().unwrap()
        )),
        "{}",
        ok(&shown)
    );
    assert!(ok(&listed).contains(&asset), "{}", ok(&listed));
    assert!(
        ok(&asset_shown).contains("support-ticket-intents"),
        "{}",
        ok(&asset_shown)
    );
    ok(&verified);
    assert!(
        failure(&writer).contains("another caravan process is using the data directory"),
        "a writer is still refused while the node serves"
    );
    assert!(
        ok(&topped_up).contains("credits it from the vault's log"),
        "{}",
        ok(&topped_up)
    );
    assert!(
        credited.contains("7 USDC"),
        "the serving node credits a deposit made beside it:\n{credited}"
    );

    let (mut server, _, written) = start_logged_serve(dir, &["--epoch-every", "1s"], &[]);
    std::thread::sleep(std::time::Duration::from_secs(5));
    server.kill().unwrap();
    server.wait().unwrap();
    let log = written.lock().unwrap().clone();
    assert!(
        !log.contains("closed") && !log.contains("posted") && !log.contains("failed"),
        "a restarted node with nothing new closes and posts nothing:\n{log}"
    );
}

/// `caravan verify` reads the chain's own record of posted roots: every epoch ever posted
/// checks out with its state named (an older one superseded, the latest active, one in its
/// delay pending), an epoch never posted is named as such, and nothing is deployed by a verify.
#[test]
fn verify_checks_every_epoch_ever_posted_and_names_its_state() {
    let plain = tempfile::tempdir().unwrap();
    let dir = plain.path();
    let labeler = "0xdbF03B407c01E7cD3CBea99509d93f8DDDC8C6FB";
    let asset = store_with_paid_asset(dir);
    pay_and_close(dir, &asset, labeler);
    ok(&caravan(dir, &["epoch", "post"]));
    pay_and_close(dir, &asset, labeler);
    ok(&caravan(dir, &["epoch", "post"]));
    let first = ok(&caravan(dir, &["verify", "--epoch", "1"]));
    assert!(
        first.starts_with("match: epoch 1's root")
            && first.contains("it is superseded by a later epoch"),
        "{first}"
    );
    let second = ok(&caravan(dir, &["verify", "--epoch", "2"]));
    assert!(
        second.starts_with("match: epoch 2's root") && second.contains("it is active"),
        "{second}"
    );
    pay_and_close(dir, &asset, labeler);
    let unposted = failure(&caravan(dir, &["verify", "--epoch", "3"]));
    assert!(
        unposted
            .contains("epoch 3 was never posted on embedded; the chain's record holds epochs 1, 2"),
        "{unposted}"
    );
    let bundle = dir.join("epoch-1.json");
    ok(&caravan(
        dir,
        &["epoch", "show", "1", "--out", bundle.to_str().unwrap()],
    ));

    let fresh = tempfile::tempdir().unwrap();
    let never = failure(&caravan(
        fresh.path(),
        &[
            "verify",
            "--epoch",
            "1",
            "--bundle",
            bundle.to_str().unwrap(),
        ],
    ));
    assert!(
        never.contains("nothing was ever posted on embedded"),
        "{never}"
    );
    assert!(
        !fresh
            .path()
            .join("chains/embedded/deployment.json")
            .exists(),
        "a verify deploys nothing"
    );

    let delayed = tempfile::tempdir().unwrap();
    let dir = delayed.path();
    ok(&caravan(
        dir,
        &["chain", "deploy", "embedded", "--delay", "3600"],
    ));
    store_with_a_closed_epoch(dir);
    ok(&caravan(dir, &["epoch", "post"]));
    let pending = ok(&caravan(dir, &["verify", "--epoch", "1"]));
    assert!(
        pending.starts_with("match: epoch 1's root") && pending.contains("it is pending"),
        "{pending}"
    );
}

/// The README's walkthrough, run as written there (only the ports are moved to free ones): from
/// an empty directory to a paid call with the official `openai` client on a node settling on
/// anvil, and the model developer's claim landing USDC in their wallet.
#[test]
fn the_readme_walkthrough_runs_from_nothing_to_a_paid_call_and_a_claim_on_anvil() {
    let anvil = caravan_chain::anvil::installed_for_tests();
    let python = python_clients();
    let models = installed_models_dir();
    let readme =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("../../README.md"))
            .unwrap();
    let block = readme
        .split("<!-- walkthrough:start -->\n```sh\n")
        .nth(1)
        .and_then(|rest| rest.split("```\n<!-- walkthrough:end -->").next())
        .expect("the README holds the walkthrough between its markers");
    let free_port = || {
        std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port()
    };
    let script = format!(
        "trap 'kill $(jobs -p) 2>/dev/null || true' EXIT\n{}",
        block
            .replace("8545", &free_port().to_string())
            .replace("127.0.0.1:8080", &format!("127.0.0.1:{}", free_port()))
    );
    let scratch = tempfile::tempdir().unwrap();
    let tools = [
        Path::new(env!("CARGO_BIN_EXE_caravan")).parent().unwrap(),
        anvil.parent().unwrap(),
        &Path::new(env!("CARGO_MANIFEST_DIR")).join("../../scripts/anvil/node_modules/.bin"),
        python.parent().unwrap(),
    ];
    let path = std::env::join_paths(
        tools
            .iter()
            .map(|dir| dir.to_path_buf())
            .chain(std::env::split_paths(&std::env::var_os("PATH").unwrap())),
    )
    .unwrap();
    let mut run = Command::new("bash")
        .args(["-euo", "pipefail", "-c", &script])
        .current_dir(scratch.path())
        .env("PATH", path)
        .env("CARAVAN_MODELS_DIR", models)
        .env_remove("CARAVAN_DATABASE_URL")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(300);
    while run.try_wait().unwrap().is_none() {
        if std::time::Instant::now() > deadline {
            run.kill().unwrap();
        }
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
    let output = run.wait_with_output().unwrap();
    let (out, err) = (
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr),
    );
    let node_log = std::fs::read_to_string(scratch.path().join("node.log")).unwrap_or_default();
    assert!(
        output.status.success(),
        "the walkthrough failed:\n{out}\n{err}\nnode.log:\n{node_log}"
    );
    assert!(out.contains("384 numbers for"), "{out}");
    assert!(node_log.contains("deposit credited: 5 USDC"), "{node_log}");
    let paid: u128 = out
        .lines()
        .last()
        .and_then(|line| line.split_whitespace().next())
        .and_then(|number| number.parse().ok())
        .unwrap_or_else(|| panic!("no balance at the end of:\n{out}"));
    assert!(
        paid > 0,
        "the developer's wallet holds what the claim paid:\n{out}"
    );
}
