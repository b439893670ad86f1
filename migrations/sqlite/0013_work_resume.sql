-- By-tag work that another node (or this one after a restart) can resume: what to do again
-- (`command`, the encoded by-tag command; empty for work started before this version, which
-- cannot be resumed and is marked failed), which tag, how far it got (`after_customer`: every
-- customer up to this id has been handled, `customers` counts them), and who runs it
-- (`claimed_by`, a cluster_nodes id; '' on a single node).
ALTER TABLE work ADD COLUMN command BLOB NOT NULL DEFAULT x'';
ALTER TABLE work ADD COLUMN tag_key TEXT NOT NULL DEFAULT '';
ALTER TABLE work ADD COLUMN tag_value TEXT NOT NULL DEFAULT '';
ALTER TABLE work ADD COLUMN after_customer TEXT NOT NULL DEFAULT '';
ALTER TABLE work ADD COLUMN claimed_by TEXT NOT NULL DEFAULT '';
-- Running work is looked for by every node every few seconds: few rows, whatever the history holds.
CREATE INDEX work_running ON work (claimed_by) WHERE state = 'running';
