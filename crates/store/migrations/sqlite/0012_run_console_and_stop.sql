-- The console lines a run's script printed (output.log over file_stream), kept when
-- runs.console = "keep". One row per line number: wandb-core rewrites a line it sent before
-- (a progress bar redrawn with \r), and the last text sent for a number is the line.
CREATE TABLE run_console (
    run_id  INTEGER NOT NULL REFERENCES runs(id),
    line_no INTEGER NOT NULL,
    text    TEXT    NOT NULL,
    PRIMARY KEY (run_id, line_no)
) WITHOUT ROWID;

-- Someone asked the run to stop (W&B's stopRun); file_stream answers `stopped` until it ends.
ALTER TABLE runs ADD COLUMN stop_requested INTEGER NOT NULL DEFAULT 0;
