-- Customer state: tags, secondary ids, metadata, app-data leases, activity, reminders, background
-- work, and the notification outbox. Times are BIGINT unix milliseconds; an expiry of NULL never
-- expires.

CREATE TABLE customer_tags (
    customer_id  TEXT NOT NULL REFERENCES customers (id),
    key          TEXT NOT NULL,
    value        TEXT NOT NULL,
    org_id       TEXT NOT NULL REFERENCES orgs (id),
    expires_at   BIGINT,
    updated_at   BIGINT NOT NULL,
    PRIMARY KEY (customer_id, key)
);
-- By-tag work finds customers through this.
CREATE INDEX customer_tags_by_tag ON customer_tags (org_id, key, value, customer_id);

-- A secondary id (key, value) names one customer per org.
CREATE TABLE customer_secondary_ids (
    org_id       TEXT NOT NULL REFERENCES orgs (id),
    key          TEXT NOT NULL,
    value        TEXT NOT NULL,
    customer_id  TEXT NOT NULL REFERENCES customers (id),
    expires_at   BIGINT,
    updated_at   BIGINT NOT NULL,
    PRIMARY KEY (org_id, key, value)
);
CREATE INDEX customer_secondary_ids_by_customer ON customer_secondary_ids (customer_id);

CREATE TABLE customer_metadata (
    customer_id  TEXT NOT NULL REFERENCES customers (id),
    key          TEXT NOT NULL,
    text_value   TEXT,
    bytes_value  BLOB,
    updated_at   BIGINT NOT NULL,
    PRIMARY KEY (customer_id, key)
);

-- A lease on (app, customer) app data: held by one connection until `lease_until`.
ALTER TABLE app_data ADD COLUMN lease_owner TEXT;
ALTER TABLE app_data ADD COLUMN lease_until BIGINT;

-- Activity: sessions per (customer, source, session id), with their activities.
CREATE TABLE activity_sessions (
    customer_id  TEXT NOT NULL REFERENCES customers (id),
    source       TEXT NOT NULL,
    session_id   TEXT NOT NULL,
    app_id       TEXT NOT NULL REFERENCES apps (id),
    provider     INTEGER NOT NULL,
    number       TEXT NOT NULL,
    partition    TEXT NOT NULL DEFAULT '',
    created_at   BIGINT NOT NULL,
    updated_at   BIGINT NOT NULL,
    PRIMARY KEY (customer_id, source, session_id)
);

CREATE TABLE activities (
    id           TEXT PRIMARY KEY,
    customer_id  TEXT NOT NULL REFERENCES customers (id),
    source       TEXT NOT NULL,
    session_id   TEXT NOT NULL,
    key          TEXT NOT NULL,
    properties   TEXT NOT NULL,   -- JSON object of string to string
    created_at   BIGINT NOT NULL
);
CREATE INDEX activities_by_session ON activities (customer_id, source, session_id, created_at);

-- Reminders are per (app, customer, key). `remind_at` is the next firing time. Reminders set by tag
-- remember the tag and the work that set them, for the notification.
CREATE TABLE reminders (
    app_id         TEXT NOT NULL REFERENCES apps (id),
    customer_id    TEXT NOT NULL REFERENCES customers (id),
    key            TEXT NOT NULL,
    org_id         TEXT NOT NULL REFERENCES orgs (id),
    remind_at      BIGINT NOT NULL,
    interval_secs  BIGINT,
    payload        TEXT,
    tag_key        TEXT,
    tag_value      TEXT,
    work_id        TEXT,
    PRIMARY KEY (app_id, customer_id, key)
);
CREATE INDEX reminders_due ON reminders (remind_at);

-- Background work started by by-tag commands; the reply carries its id at once.
CREATE TABLE work (
    id           TEXT PRIMARY KEY,
    org_id       TEXT NOT NULL REFERENCES orgs (id),
    app_id       TEXT NOT NULL REFERENCES apps (id),
    kind         TEXT NOT NULL,
    state        TEXT NOT NULL,   -- running, done, failed
    customers    BIGINT NOT NULL DEFAULT 0,
    error        TEXT,
    created_at   BIGINT NOT NULL,
    finished_at  BIGINT
);

-- The notification outbox: written in the same transaction as the change that causes it, deleted
-- once an app has answered. `seq` orders notifications; per customer they are delivered in order.
CREATE TABLE outbox (
    seq              INTEGER PRIMARY KEY,
    id               TEXT NOT NULL UNIQUE,
    org_id           TEXT NOT NULL REFERENCES orgs (id),
    app_id           TEXT NOT NULL REFERENCES apps (id),
    customer_id      TEXT NOT NULL,
    entry            BLOB NOT NULL,   -- an encoded ServerToAppCustomerNotification without app data
    created_at       BIGINT NOT NULL,
    expires_at       BIGINT NOT NULL,
    attempts         INTEGER NOT NULL DEFAULT 0,
    next_attempt_at  BIGINT NOT NULL DEFAULT 0,
    last_error       TEXT
);
CREATE INDEX outbox_by_customer ON outbox (app_id, customer_id, seq);

-- Adoption: the customer that took over a decommissioned one.
ALTER TABLE customers ADD COLUMN adopted_by TEXT;
