-- What W&B's SDK keeps of a run beyond herald's own fields: the summary it replaces wholesale,
-- notes, and how many lines of each file_stream file were accepted. The counts are the offsets
-- that make a resent post add nothing, and where a resumed run continues.
ALTER TABLE runs ADD COLUMN summary TEXT NOT NULL DEFAULT '{}';
ALTER TABLE runs ADD COLUMN notes TEXT;
ALTER TABLE runs ADD COLUMN history_lines INTEGER NOT NULL DEFAULT 0;
ALTER TABLE runs ADD COLUMN log_lines INTEGER NOT NULL DEFAULT 0;
ALTER TABLE runs ADD COLUMN events_lines INTEGER NOT NULL DEFAULT 0;
