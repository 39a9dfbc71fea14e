-- A project may poll its registry at its own interval (seconds); NULL: the global setting.
ALTER TABLE projects ADD COLUMN poll_interval_secs INTEGER;
