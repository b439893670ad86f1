-- Several nodes on one database (PostgreSQL): who is up, and which node delivers each app's
-- notifications. Both are rebuilt by the running nodes within a heartbeat; nothing else refers
-- to them, and `hodi import` does not copy them.

-- Each node writes its row every heartbeat; a row past expires_at is a dead (or stopped) node's.
CREATE TABLE cluster_nodes (
    id TEXT COLLATE "C" PRIMARY KEY,
    -- JSON: the listeners it serves (as listening.toml has them)
    listeners TEXT NOT NULL,
    -- JSON: {"apps": {app id: notification-capable sockets}, "simulators": {org id: simulator sockets}}
    sockets TEXT NOT NULL,
    started_at BIGINT NOT NULL,
    heartbeat_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL
);

-- The node that delivers an app's notifications (one at a time, so per-customer order and the
-- window hold across nodes), until expires_at; a node that stops renewing loses it then.
CREATE TABLE delivery_leases (
    app_id TEXT COLLATE "C" PRIMARY KEY,
    node_id TEXT COLLATE "C" NOT NULL,
    expires_at BIGINT NOT NULL
);
