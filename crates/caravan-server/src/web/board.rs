//! The task board: the projects a contributor may work on, what each pays per item and per hour
//! at the pace people keep there, what is left, the exam, and where they stand — in three tabs
//! (new, in progress, completed) and pages, so ten thousand projects load as fast as ten.

use std::sync::Arc;

use askama::Template;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use caravan_node::Node;
use caravan_node::desk::{ListedProject, Shelf};
use caravan_tasks::board::{Availability, ExamState};
use serde::Deserialize;

use super::page::{Chrome, PageError, Viewer, render};

/// Projects per page of the board.
pub const PROJECTS_PER_PAGE: usize = 25;

#[derive(Deserialize)]
pub struct BoardQuery {
    #[serde(default)]
    tab: Option<String>,
    #[serde(default)]
    page: Option<usize>,
}

/// A project as its card shows it: every figure already in words.
pub struct Card {
    pub id: String,
    pub title: String,
    pub task_type: String,
    pub bounty: String,
    pub per_hour: Option<String>,
    pub pace: Option<String>,
    pub items_left: u64,
    pub exam: Option<String>,
    pub availability: Option<&'static str>,
    pub standing: Vec<String>,
    pub paused: Option<String>,
    pub action: &'static str,
}

pub struct Tab {
    pub key: &'static str,
    pub label: &'static str,
    pub count: usize,
    pub current: bool,
}

#[derive(Template)]
#[template(path = "tasks.html")]
struct BoardPage {
    chrome: Chrome,
    tabs: Vec<Tab>,
    cards: Vec<Card>,
    empty: &'static str,
    tab: &'static str,
    page: usize,
    previous: Option<usize>,
    next: Option<usize>,
    /// The review queues the viewer may open: project id, title, answers waiting.
    reviewing: Vec<(String, String, u64)>,
}

/// A duration in seconds as people say it: `14 s`, `2 min 5 s`.
pub fn seconds_in_words(seconds: u32) -> String {
    match seconds {
        0..60 => format!("{seconds} s"),
        _ if seconds.is_multiple_of(60) => format!("{} min", seconds / 60),
        _ => format!("{} min {} s", seconds / 60, seconds % 60),
    }
}

impl Card {
    fn of(listed: &ListedProject) -> Card {
        let listing = &listed.listing;
        let token = &listed.token;
        let mut standing = Vec::new();
        let mut paused = None;
        if let Some(mine) = &listing.mine {
            if listing.exam.is_some() {
                standing.push(match mine.exam {
                    ExamState::Passed => "Exam passed".to_owned(),
                    ExamState::Failed => "Exam failed".to_owned(),
                    ExamState::Pending => format!("Exam: {} answered", mine.exam_answered),
                });
            }
            if mine.gold_answered > 0 {
                standing.push(format!(
                    "Check questions: {} of {} right ({:.0}%)",
                    mine.gold_right,
                    mine.gold_answered,
                    100.0 * f64::from(mine.gold_right) / f64::from(mine.gold_answered)
                ));
            }
            standing.push(format!(
                "{} submitted, {} accepted, {} rejected",
                mine.submitted, mine.accepted, mine.rejected
            ));
            standing.push(format!(
                "{} of {} left today",
                mine.daily_cap_left, listing.daily_cap
            ));
            paused = mine.paused.clone();
        }
        let availability = match listing.availability {
            Availability::Open => None,
            Availability::Closed => Some("Closed by the requester"),
            Availability::DeadlinePassed => Some("Past its deadline"),
            Availability::BudgetCommitted => Some("Its budget is fully committed"),
            Availability::Finished => Some("Every item is done"),
        };
        let action = match (&listing.mine, &paused, availability) {
            (_, Some(_), _) | (_, _, Some(_)) => "See",
            (None, _, _) => "Start",
            (Some(_), _, _) => "Continue",
        };
        Card {
            id: listed.project.to_string(),
            title: listing.title.clone(),
            task_type: listing.task_type.replace('_', " "),
            bounty: token.format(listing.bounty),
            per_hour: listing.reward_per_hour().map(|amount| token.format(amount)),
            pace: listing.median_seconds.map(seconds_in_words),
            items_left: listing.items_left,
            exam: listing.exam.map(|exam| {
                format!(
                    "{} questions first, pass mark {}",
                    exam.questions, exam.pass_mark
                )
            }),
            availability,
            standing,
            paused,
            action,
        }
    }
}

/// `GET /tasks`: the viewer's board, one tab and page of it.
pub async fn task_board(
    State(node): State<Arc<Node>>,
    viewer: Viewer,
    Query(query): Query<BoardQuery>,
) -> Response {
    let (shelf, tab) = match query.tab.as_deref() {
        Some("in-progress") => (Shelf::InProgress, "in-progress"),
        Some("completed") => (Shelf::Completed, "completed"),
        _ => (Shelf::New, "new"),
    };
    let page = query.page.unwrap_or(0);
    let desk = Arc::clone(node.desk());
    let account = viewer.account;
    // Every project's board lock is taken in turn: off the async workers.
    let board = match tokio::task::spawn_blocking(move || {
        desk.task_board(&account, shelf, page, PROJECTS_PER_PAGE)
    })
    .await
    {
        Ok(board) => board,
        Err(error) => {
            return PageError::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                format!("The node failed while listing projects: {error}."),
            )
            .into_response();
        }
    };
    let count = match shelf {
        Shelf::New => board.new,
        Shelf::InProgress => board.in_progress,
        Shelf::Completed => board.completed,
    };
    let tabs = vec![
        Tab {
            key: "new",
            label: "New",
            count: board.new,
            current: shelf == Shelf::New,
        },
        Tab {
            key: "in-progress",
            label: "In progress",
            count: board.in_progress,
            current: shelf == Shelf::InProgress,
        },
        Tab {
            key: "completed",
            label: "Completed",
            count: board.completed,
            current: shelf == Shelf::Completed,
        },
    ];
    let empty = match shelf {
        Shelf::New => {
            "No new projects are open right now. Come back later, or look under In progress."
        }
        Shelf::InProgress => {
            "You have not started a project that is still open. Pick one under New."
        }
        Shelf::Completed => "Projects you worked on appear here once they stop handing out work.",
    };
    render(&BoardPage {
        chrome: Chrome::of(&viewer, "tasks"),
        tabs,
        cards: board.projects.iter().map(Card::of).collect(),
        empty,
        tab,
        page,
        previous: page.checked_sub(1),
        next: ((page + 1) * PROJECTS_PER_PAGE < count).then_some(page + 1),
        reviewing: board
            .reviewing
            .iter()
            .map(|queue| {
                (
                    queue.project.to_string(),
                    queue.title.clone(),
                    queue.waiting,
                )
            })
            .collect(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_read_as_people_say_them() {
        assert_eq!(seconds_in_words(14), "14 s");
        assert_eq!(seconds_in_words(120), "2 min");
        assert_eq!(seconds_in_words(125), "2 min 5 s");
    }
}
