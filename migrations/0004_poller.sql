-- The registry poller's state per project: when it last looked, what failed, when it looks
-- next (back-off after failures). Shown to operators as the project's source status.

CREATE TABLE poll_status (
    project_id   INTEGER PRIMARY KEY NOT NULL REFERENCES projects (id) ON DELETE CASCADE,
    last_checked TEXT,
    last_error   TEXT,
    failures     INTEGER NOT NULL DEFAULT 0,
    next_check   TEXT NOT NULL
);
