//! `Run.logLines`: a run's kept console lines as W&B's GraphQL gives them, which is how
//! `wandb.Api().run(…).console_logs()` reads them (wandb-core's RunConsoleLogPage, from the start
//! a page at a time, and RunConsoleLogTail, the last few). Pages come from the store by line
//! number; a cursor is the number of the last line given.

use async_graphql::SimpleObject;
use herald_domain::catalog::Project;
use herald_domain::console::{ConsoleEntry, ConsoleStream};
use herald_domain::event::PageRequest;

use super::errors;
use super::page::PageInfo;
use crate::AppState;

/// Most lines one request gives, and what `first` is when absent; a larger `first` or `last`
/// is cut to it, as W&B caps them.
const MAX_LINES: i32 = 1_000;

/// One console line, with W&B's field names.
#[derive(SimpleObject)]
pub struct LogLine {
    /// The line's number, from 0.
    pub number: i64,
    /// When it was printed (RFC 3339, UTC); null for a line without a time.
    pub timestamp: Option<String>,
    /// `error` for a line printed to standard error; empty for standard output.
    pub level: String,
    /// Empty: herald keeps a labelled process's label in `line`.
    pub label: String,
    /// What was printed.
    pub line: String,
}

#[derive(SimpleObject)]
pub struct LogLineEdge {
    pub node: LogLine,
    pub cursor: String,
}

#[derive(SimpleObject)]
pub struct LogLineConnection {
    pub edges: Vec<LogLineEdge>,
    pub page_info: PageInfo,
}

/// The page `first` and `after` ask for, or the last `last` lines when it is given.
pub async fn log_lines(
    state: &AppState,
    project: &Project,
    run: &str,
    first: Option<i32>,
    after: Option<&str>,
    last: Option<i32>,
) -> async_graphql::Result<LogLineConnection> {
    let count = |name: &str, n: i32| {
        u32::try_from(n.min(MAX_LINES))
            .map_err(|_| errors::invalid(name, format!("must be 0 or more, got {n}")))
    };
    if let Some(last) = last {
        let page = state
            .store
            .console_tail(project, run, count("last", last)?)
            .await
            .map_err(errors::store)?;
        return Ok(connection(page.lines, false));
    }
    let first = count("first", first.unwrap_or(MAX_LINES))?;
    let after = match after {
        None | Some("") => None,
        Some(c) => Some(c.parse::<i64>().ok().filter(|n| *n >= 0).ok_or_else(|| {
            errors::invalid("after", format!("{c:?} is not a cursor this server gave"))
        })?),
    };
    // One line past the page says whether there is another.
    let page = PageRequest {
        after,
        limit: first + 1,
    };
    let mut lines = state
        .store
        .console(project, run, page)
        .await
        .map_err(errors::store)?
        .lines;
    let more = lines.len() > first as usize;
    lines.truncate(first as usize);
    Ok(connection(lines, more))
}

fn connection(
    lines: Vec<herald_domain::console::NumberedLine>,
    has_next_page: bool,
) -> LogLineConnection {
    let cursor = |n: i64| n.to_string();
    let page_info = PageInfo {
        end_cursor: lines.last().map(|l| cursor(l.line)),
        has_next_page,
        start_cursor: lines.first().map(|l| cursor(l.line)),
        has_previous_page: lines.first().is_some_and(|l| l.line > 0),
    };
    let edges = lines
        .into_iter()
        .map(|l| {
            let entry = ConsoleEntry::read(l);
            LogLineEdge {
                cursor: cursor(entry.line),
                node: LogLine {
                    number: entry.line,
                    timestamp: entry
                        .time
                        .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Micros, true)),
                    level: match entry.stream {
                        ConsoleStream::Stderr => "error".into(),
                        ConsoleStream::Stdout => String::new(),
                    },
                    label: String::new(),
                    line: entry.text,
                },
            }
        })
        .collect();
    LogLineConnection { edges, page_info }
}
