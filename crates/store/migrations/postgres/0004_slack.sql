-- Slack integrations: where and how to post (channel, workspace, and the secrets' names), as JSON.
ALTER TABLE integrations ADD COLUMN slack TEXT;
