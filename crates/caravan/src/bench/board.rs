//! `caravan bench tasks`, the task board: how long the board page takes to answer a signed-in
//! contributor when the node holds 10,000 open projects with 1,000,000 items between them.

use std::sync::Arc;
use std::time::Instant;

use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use caravan_core::attestation::address_of;
use caravan_server::access::SESSION_COOKIE;
use caravan_store::Location;
use caravan_tasks::item::Item;
use tower::ServiceExt;

use super::task_node::{BenchNode, open_bench_node, sign_in, wallet};
use crate::present::progress;

/// Projects on the node and items in each, at full scale.
pub const PROJECTS: usize = 10_000;
pub const ITEMS_PER_PROJECT: usize = 100;
/// Projects the contributor has worked on (the In progress tab).
pub const WORKED_ON: usize = 20;

/// Median and slowest milliseconds of `GET /tasks` over `requests`, for each of its three tabs.
pub struct BoardTimes {
    pub projects: usize,
    pub items: usize,
    pub new_ms: f64,
    pub in_progress_ms: f64,
    pub slowest_ms: f64,
}

/// Fills a node at `location` with `projects` projects of `items_per_project` items, has one
/// contributor judge an item in a few of them, and times the board page through the HTTP
/// router (session lookup, listing, template) `requests` times per tab.
pub fn measure_task_board(
    location: &Location,
    projects: usize,
    items_per_project: usize,
    requests: usize,
) -> Result<BoardTimes, String> {
    let BenchNode {
        node,
        requester,
        spec,
        _scratch,
    } = open_bench_node(location)?;
    let desk = Arc::clone(node.desk());
    let bar = progress(projects as u64, "task board: projects and their items");
    let mut ids = Vec::with_capacity(projects);
    for n in 0..projects {
        let mut spec = spec.clone();
        spec.title = format!("bench project {n}: pick the topic");
        // Enough for every item at the most answers each, so each project holds its own escrow.
        spec.budget = spec.bounty * (items_per_project as u128) * u128::from(spec.overlap.max);
        let project = desk
            .create_project(requester, spec)
            .map_err(|e| e.to_string())?;
        let items = (0..items_per_project)
            .map(|i| Item {
                data: serde_json::json!({ "text": format!("article {i} of project {n}") }),
                gold: None,
                predictions: Vec::new(),
            })
            .collect();
        desk.add_items(&project, requester, items)
            .map_err(|e| e.to_string())?;
        ids.push(project);
        bar.inc(1);
    }
    bar.finish_and_clear();
    let contributor = wallet("task board contributor");
    let account = address_of(contributor.verifying_key());
    for project in ids.iter().take(WORKED_ON) {
        let assignment = desk
            .next_item(project, account)
            .map_err(|e| e.to_string())?;
        desk.submit(
            project,
            account,
            assignment.item,
            caravan_tasks::schema::Answer::Choice("sports".into()),
        )
        .map_err(|e| e.to_string())?;
    }
    let session = sign_in(&node, &contributor)?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("cannot start the async runtime: {e}"))?;
    let app = caravan_server::router(Arc::clone(&node));
    let time_tab = |path: &str| -> Result<Vec<f64>, String> {
        let mut times = Vec::with_capacity(requests);
        for _ in 0..requests {
            let request = Request::get(path)
                .header(header::COOKIE, format!("{SESSION_COOKIE}={session}"))
                .body(Body::empty())
                .expect("a valid request");
            let started = Instant::now();
            let (status, bytes) = runtime.block_on(async {
                let response = app.clone().oneshot(request).await.expect("infallible");
                let status = response.status();
                let bytes = axum::body::to_bytes(response.into_body(), usize::MAX)
                    .await
                    .map_err(|e| e.to_string());
                (status, bytes)
            });
            times.push(started.elapsed().as_secs_f64() * 1000.0);
            let bytes = bytes?;
            if status != StatusCode::OK
                || !String::from_utf8_lossy(&bytes).contains("class=\"card\"")
            {
                return Err(format!(
                    "GET {path} answered {status} without project cards"
                ));
            }
        }
        Ok(times)
    };
    let new = time_tab("/tasks")?;
    let in_progress = time_tab("/tasks?tab=in-progress")?;
    let slowest = new.iter().chain(&in_progress).copied().fold(0.0, f64::max);
    Ok(BoardTimes {
        projects,
        items: projects * items_per_project,
        new_ms: super::median(new),
        in_progress_ms: super::median(in_progress),
        slowest_ms: slowest,
    })
}

/// The workload at `scale` (1: full; 20: the quick check).
pub fn workload(scale: usize) -> (usize, usize) {
    (PROJECTS / scale, ITEMS_PER_PROJECT)
}
