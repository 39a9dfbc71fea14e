-- API tokens: a name and a role cap per script session. A token acts with the lower of its
-- own role and its user's current role, so demoting a user demotes their tokens too.
ALTER TABLE sessions ADD COLUMN name TEXT;
ALTER TABLE sessions ADD COLUMN role TEXT CHECK (role IS NULL OR role IN ('viewer', 'deployer', 'admin'));
CREATE INDEX audit_log_actor ON audit_log (actor);
CREATE INDEX audit_log_action ON audit_log (action);
