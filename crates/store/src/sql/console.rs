//! A run's kept console lines (`run_console`): written inside file_stream's transaction, each by
//! its line number, so a line wandb-core rewrites (a progress bar) replaces the one before and a
//! resent post writes the same text again; read back a page at a time, or the last few.

use herald_domain::console::NumberedLine;
use herald_domain::event::PageRequest;
use herald_domain::ids::RunId;

use super::db::{params, values_sql, Columns, Conn, Value};
use crate::StoreResult;

/// Lines per INSERT statement (3 parameters each, far below either database's limit).
const CHUNK: usize = 300;

/// Writes `lines` of `run`, replacing the text of any number it already has.
pub(crate) async fn write_lines(
    tx: &mut Conn<'_>,
    run: RunId,
    lines: &[NumberedLine],
) -> StoreResult<()> {
    const HEAD: &str = "INSERT INTO run_console (run_id, line_no, text)";
    const TAIL: &str = " ON CONFLICT (run_id, line_no) DO UPDATE SET text = excluded.text";
    // Numbers within one post are distinct (PostgreSQL refuses a statement that would update a
    // row twice), as they count up from its offset.
    for chunk in lines.chunks(CHUNK) {
        let params: Vec<Value> = chunk
            .iter()
            .flat_map(|l| [run.0.into(), l.line.into(), (&l.text).into()])
            .collect();
        tx.execute(&values_sql(HEAD, 3, chunk.len(), 0, TAIL), &params)
            .await?;
    }
    Ok(())
}

/// `run`'s kept lines numbered after the page's cursor, in order.
pub(crate) async fn read_lines(
    conn: &mut Conn<'_>,
    run: RunId,
    page: PageRequest,
) -> StoreResult<Vec<NumberedLine>> {
    conn.fetch_all(
        "SELECT line_no, text FROM run_console WHERE run_id = $1 AND line_no > $2 \
         ORDER BY line_no LIMIT $3",
        params![run.0, page.after.unwrap_or(-1), page.limit as i64],
        numbered,
    )
    .await
}

/// `run`'s last `n` kept lines, in order.
pub(crate) async fn read_tail(
    conn: &mut Conn<'_>,
    run: RunId,
    n: u32,
) -> StoreResult<Vec<NumberedLine>> {
    let mut lines = conn
        .fetch_all(
            "SELECT line_no, text FROM run_console WHERE run_id = $1 ORDER BY line_no DESC LIMIT $2",
            params![run.0, i64::from(n)],
            numbered,
        )
        .await?;
    lines.reverse();
    Ok(lines)
}

fn numbered(r: &dyn Columns) -> StoreResult<NumberedLine> {
    Ok(NumberedLine {
        line: r.int_required("line_no")?,
        text: r.text_required("text")?,
    })
}
