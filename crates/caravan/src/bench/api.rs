//! `caravan bench api`: the HTTP API fuzzed from its own OpenAPI document by schemathesis.
//!
//! A real `caravan serve` (this binary, a child process) serves the store the other outside
//! benchmarks prepare: a paid classifier, payers with API keys, a labelling project and signed-in
//! contributors. schemathesis (installed, pinned, by `scripts/schemathesis/install.sh`) reads
//! `/v1/openapi.json` from the node and sends every operation but signing out generated
//! requests, valid and invalid, with a payer's key of every scope and a contributor's session
//! that is also the node's operator (so requests get past authentication to each route's own
//! checks), and checks every answer against the document: its status is one the document lists,
//! its content type, headers and body match it, and it is never a 5xx. The run counts every
//! request and every 5xx from schemathesis's own record of the traffic (a HAR file) and fails on
//! any failed check.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use caravan_node::keys::Scope;
use caravan_server::access::SESSION_COOKIE;
use clap::Args;
use serde_json::Value;

use super::served::{How, PAID_MODEL, Serving, Size, World, free_port, prepare, scratch_site};
use crate::present::table;

#[derive(Args)]
pub struct ApiArgs {
    /// A short run for CI: 10 generated requests per operation and phase instead of 100.
    #[arg(long)]
    quick: bool,
    /// Generated requests per operation and phase [default: 100, or 10 with --quick].
    #[arg(long)]
    max_examples: Option<u32>,
    /// The schemathesis command: `scripts/schemathesis/install.sh` installs it and prints its
    /// path.
    #[arg(long, env = "CARAVAN_SCHEMATHESIS")]
    schemathesis: PathBuf,
    /// Seed of schemathesis's generation: a run that fails replays with it.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Directory for the scratch store and schemathesis's reports (a fresh temporary one
    /// inside it, kept when a check fails).
    #[arg(long, default_value = ".")]
    scratch_dir: PathBuf,
}

/// A payer whose key may do everything a key can (call models, request, label, review), so
/// that generated requests reach every route's own checks rather than stopping at the key's
/// scope; a contributor whose session is also the node's operator, for the session and
/// operator routes.
const SIZE: Size = Size {
    callers: 1,
    labellers: 1,
    items: 100,
    key_scopes: &Scope::ALL,
};

pub fn api(args: ApiArgs) -> Result<(), String> {
    let examples = args
        .max_examples
        .unwrap_or(if args.quick { 10 } else { 100 });
    let (scratch, _database, site) = scratch_site("caravan-api-", &args.scratch_dir, None)?;
    let world = prepare(&site, SIZE)?;
    let port = free_port()?;
    let log = site.log();
    let serving = How {
        operator: Some(world.sessions[0].0),
        ..How::SERVING
    };
    let _node = Serving::start(&site, port, serving, &log)?;
    let reports = site.dir.join("schemathesis");
    let har = reports.join("traffic.har");
    let config = reports.join("schemathesis.toml");
    std::fs::create_dir_all(&reports)
        .and_then(|()| std::fs::write(&config, known_values(&world)))
        .map_err(|e| format!("cannot write {}: {e}", config.display()))?;
    let started = Instant::now();
    let status = Command::new(&args.schemathesis)
        .arg("--config-file")
        .arg(&config)
        .arg("run")
        .arg(format!("http://127.0.0.1:{port}/v1/openapi.json"))
        // Every answer against the document; not whether the document describes inputs as
        // narrowly as the node checks them (an EIP-55 checksum, an id that names nothing).
        .args([
            "--checks",
            "not_a_server_error,status_code_conformance,content_type_conformance,\
             response_headers_conformance,response_schema_conformance",
        ])
        // Signing out would end the session every later request rides on.
        .args(["--exclude-path", "/v1/auth/logout"])
        .args(["--max-examples", &examples.to_string()])
        .args(["--seed", &args.seed.to_string()])
        // One worker: with two, schemathesis's threads build hypothesis's descriptions with
        // `ast.parse` at once, and Python 3.11's AST recursion counter is not safe for that
        // (CPython gh-106905: "SystemError: AST constructor recursion depth mismatch"), which
        // failed a CI run as a schemathesis runtime error.
        .args(["--workers", "1", "--no-color"])
        .args(["--request-timeout", "30"])
        .args(["--report", "har"])
        .arg("--report-har-path")
        .arg(&har)
        .arg("--header")
        .arg(format!("Authorization: Bearer {}", world.keys[0].1))
        .arg("--header")
        .arg(format!("Cookie: {SESSION_COOKIE}={}", world.sessions[0].1))
        .current_dir(&site.dir)
        .status()
        .map_err(|e| {
            format!(
                "cannot run {}: {e}; scripts/schemathesis/install.sh installs it and prints its path",
                args.schemathesis.display()
            )
        })?;
    let traffic = traffic(&har)
        .map_err(|e| format!("{e}; the node's output ends:\n{}", site.log_tail(40)))?;
    let mut t = table(&["figure", "value", "must be"], &[1]);
    for (figure, value, must) in [
        (
            "requests sent (generated inputs)",
            traffic.requests.to_string(),
            "",
        ),
        ("5xx answers", traffic.server_errors.to_string(), "0"),
        (
            "checks failed (5xx, status, content type, headers, body schema)",
            if status.success() {
                "0"
            } else {
                "some, listed above"
            }
            .to_owned(),
            "0",
        ),
    ] {
        t.add_row(vec![figure.to_owned(), value, must.to_owned()]);
    }
    println!("{t}");
    println!(
        "{} requests in {:.0} s",
        traffic.requests,
        started.elapsed().as_secs_f64()
    );
    println!("api_fuzz_requests: {}", traffic.requests);
    println!("api_fuzz_5xx: {}", traffic.server_errors);
    if traffic.server_errors > 0 || !status.success() {
        let node_said = site.log_tail(40);
        let kept = scratch.keep();
        return Err(format!(
            "schemathesis found {} (5xx answers: {}); its record of every request is in {}, the node's output in {}, which ends:\n{node_said}",
            if status.success() {
                "no failed check".to_owned()
            } else {
                format!("failed checks ({status})")
            },
            traffic.server_errors,
            kept.join("schemathesis/traffic.har").display(),
            kept.join("serve.log").display(),
        ));
    }
    Ok(())
}

/// How often a generated request uses a value that names something the node holds, rather
/// than one drawn from the document's types (which almost always names nothing: a 404).
const KNOWN_VALUE_PROBABILITY: f64 = 0.8;

/// schemathesis's configuration: the ids of what the prepared store holds (the project, the
/// payer and the contributor, the paid model, the first epochs), offered for the path
/// parameters and body fields that name them, so that generated requests reach past "not
/// found" to each route's own checks.
fn known_values(world: &World) -> String {
    let accounts: Vec<String> = world
        .keys
        .iter()
        .chain(&world.sessions)
        .map(|(account, _)| format!("{:?}", account.to_string()))
        .collect();
    let p = KNOWN_VALUE_PROBABILITY;
    format!(
        "[dictionaries.projects]\nvalues = [{project:?}]\n\
         [dictionaries.accounts]\nvalues = [{accounts}]\n\
         [dictionaries.models]\nvalues = [{model:?}]\n\
         [dictionaries.epochs]\nvalues = [1, 2]\n\
         [parameters]\n\
         \"path.project\" = {{ dictionary = \"projects\", probability = {p} }}\n\
         \"path.account\" = {{ dictionary = \"accounts\", probability = {p} }}\n\
         \"path.model\" = {{ dictionary = \"models\", probability = {p} }}\n\
         \"path.epoch\" = {{ dictionary = \"epochs\", probability = {p} }}\n\
         \"body.model\" = {{ dictionary = \"models\", probability = {p} }}\n",
        project = world.project,
        accounts = accounts.join(", "),
        model = PAID_MODEL,
    )
}

/// What schemathesis sent and what came back, counted from its HAR record.
struct Traffic {
    requests: usize,
    server_errors: usize,
}

fn traffic(har: &Path) -> Result<Traffic, String> {
    let text = std::fs::read_to_string(har)
        .map_err(|e| format!("schemathesis left no record at {}: {e}", har.display()))?;
    let record: Value = serde_json::from_str(&text)
        .map_err(|e| format!("{} is not a HAR record: {e}", har.display()))?;
    let entries = record["log"]["entries"]
        .as_array()
        .ok_or_else(|| format!("{} lists no entries", har.display()))?;
    let server_errors = entries
        .iter()
        .filter(|entry| {
            entry["response"]["status"]
                .as_u64()
                .is_some_and(|s| s >= 500)
        })
        .count();
    Ok(Traffic {
        requests: entries.len(),
        server_errors,
    })
}
