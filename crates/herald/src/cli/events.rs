//! `herald events list`: an entity's event log, a page at a time or to its end.

use clap::Subcommand;
use herald_api::responses::EventPage;
use herald_domain::event::Event;

use super::remote::{cell, table, Remote};
use crate::client::seg;

#[derive(Subcommand, Debug)]
pub enum EventsCmd {
    /// List an entity's events, oldest first.
    List {
        /// The team, user or organization.
        entity: String,
        /// Start after this cursor (an event id).
        #[arg(long)]
        after: Option<String>,
        /// Events per page (1-1000).
        #[arg(long, default_value_t = 100)]
        limit: u32,
        /// Follow cursors to the end.
        #[arg(long)]
        all: bool,
    },
}

pub(super) async fn events(r: &Remote, cmd: EventsCmd) -> anyhow::Result<()> {
    let EventsCmd::List {
        entity,
        after,
        limit,
        all,
    } = cmd;
    let mut cursor = after;
    let mut events = Vec::new();
    loop {
        let mut url = format!("/api/v1/entities/{}/events?limit={limit}", seg(&entity));
        if let Some(a) = &cursor {
            url.push_str(&format!("&after={}", seg(a)));
        }
        let answer = r.client.get(&url).await?;
        if r.json && !all {
            r.print(&answer);
            return Ok(());
        }
        let page: EventPage = answer.parse()?;
        events.extend(page.events);
        cursor = page.next_cursor;
        if !all || cursor.is_none() {
            break;
        }
    }
    if r.json {
        // Every page's events as one list, each as the server wrote it (the same type
        // serializes them here).
        outln!("{}", serde_json::to_string(&events)?);
        return Ok(());
    }
    table(
        &[
            "ID",
            "TYPE",
            "PROJECT",
            "COLLECTION",
            "VERSION",
            "ALIAS/TAG",
            "RUN",
            "AUTHOR",
            "TIME",
        ],
        events.iter().map(row).collect(),
    );
    if let Some(c) = &cursor {
        outln!("(more: --after {c})");
    }
    Ok(())
}

fn row(e: &Event) -> Vec<String> {
    vec![
        cell(&e.id),
        cell(&e.event_type),
        cell(&e.project),
        cell(&e.collection),
        cell(&e.version),
        cell(&e.alias.as_ref().or(e.tag.as_ref())),
        cell(&e.run),
        cell(&e.author),
        cell(&e.created_at),
    ]
}
