-- Foundation schema: provisioned resources, customers and their numbers, app data, reminders.
--
-- Written to port as-is to PostgreSQL (a second migrations folder, same statements): text ids,
-- BIGINT unix milliseconds for times, no SQLite-only types, no AUTOINCREMENT.

CREATE TABLE orgs (
    id          TEXT PRIMARY KEY,
    name        TEXT NOT NULL,
    created_at  BIGINT NOT NULL
);

CREATE TABLE apps (
    id          TEXT PRIMARY KEY,
    org_id      TEXT NOT NULL REFERENCES orgs (id),
    name        TEXT NOT NULL,
    created_at  BIGINT NOT NULL
);
CREATE INDEX apps_by_org ON apps (org_id);

-- API keys are org-scoped, as in Elarian. Only a SHA-256 of the key is kept: keys are 256-bit random
-- strings, so a fast hash is enough (a slow password hash guards low-entropy secrets, which these are not).
CREATE TABLE api_keys (
    id          TEXT PRIMARY KEY,
    org_id      TEXT NOT NULL REFERENCES orgs (id),
    key_hash    TEXT NOT NULL UNIQUE,
    prefix      TEXT NOT NULL,
    created_at  BIGINT NOT NULL,
    revoked_at  BIGINT
);

-- Short-lived tokens from GenerateAuthToken, also stored hashed.
CREATE TABLE auth_tokens (
    token_hash  TEXT PRIMARY KEY,
    org_id      TEXT NOT NULL REFERENCES orgs (id),
    app_id      TEXT NOT NULL REFERENCES apps (id),
    expires_at  BIGINT NOT NULL
);
CREATE INDEX auth_tokens_expiry ON auth_tokens (expires_at);

CREATE TABLE purses (
    id          TEXT PRIMARY KEY,
    org_id      TEXT NOT NULL REFERENCES orgs (id),
    currency    TEXT NOT NULL,
    created_at  BIGINT NOT NULL
);

-- Channel numbers an org may send from and receive on. `channel` is the lower-case name the SDKs
-- use (sms, voice, ussd, whatsapp, telegram, fb_messenger, email, or a payment channel).
CREATE TABLE channel_numbers (
    org_id      TEXT NOT NULL REFERENCES orgs (id),
    channel     TEXT NOT NULL,
    number      TEXT NOT NULL,
    created_at  BIGINT NOT NULL,
    PRIMARY KEY (org_id, channel, number)
);

CREATE TABLE customers (
    id                  TEXT PRIMARY KEY,
    org_id              TEXT NOT NULL REFERENCES orgs (id),
    created_at          BIGINT NOT NULL,
    decommissioned_at   BIGINT
);
CREATE INDEX customers_by_org ON customers (org_id);

-- A customer number (provider, number, partition) belongs to one customer per org. Partition is ''
-- when absent so that the primary key stays total.
CREATE TABLE customer_numbers (
    org_id       TEXT NOT NULL REFERENCES orgs (id),
    provider     INTEGER NOT NULL,
    number       TEXT NOT NULL,
    partition    TEXT NOT NULL DEFAULT '',
    customer_id  TEXT NOT NULL REFERENCES customers (id),
    created_at   BIGINT NOT NULL,
    PRIMARY KEY (org_id, provider, number, partition)
);
CREATE INDEX customer_numbers_by_customer ON customer_numbers (customer_id);

-- App data is per (app, customer): either text or bytes, as the DataMapValue that set it.
CREATE TABLE app_data (
    app_id       TEXT NOT NULL REFERENCES apps (id),
    customer_id  TEXT NOT NULL REFERENCES customers (id),
    text_value   TEXT,
    bytes_value  BLOB,
    updated_at   BIGINT NOT NULL,
    PRIMARY KEY (app_id, customer_id)
);
