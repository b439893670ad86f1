-- Foundation schema: provisioned resources, customers and their numbers, app data, reminders.
--
-- The PostgreSQL twin of migrations/sqlite: the same versions, tables, columns and indexes, so that
-- a schema version means the same on both and `hodi import` copies table by table. Differences are
-- of the dialect only: every TEXT compares bytewise (COLLATE "C", as SQLite compares), every integer
-- is BIGINT (the store reads and binds i64), BYTEA for BLOB, identities for SQLite's rowid keys.

CREATE TABLE orgs (
    id          TEXT COLLATE "C" PRIMARY KEY,
    name        TEXT COLLATE "C" NOT NULL,
    created_at  BIGINT NOT NULL
);

CREATE TABLE apps (
    id          TEXT COLLATE "C" PRIMARY KEY,
    org_id      TEXT COLLATE "C" NOT NULL REFERENCES orgs (id),
    name        TEXT COLLATE "C" NOT NULL,
    created_at  BIGINT NOT NULL
);
CREATE INDEX apps_by_org ON apps (org_id);

-- API keys are org-scoped, as in Elarian. Only a SHA-256 of the key is kept: keys are 256-bit random
-- strings, so a fast hash is enough (a slow password hash guards low-entropy secrets, which these are not).
CREATE TABLE api_keys (
    id          TEXT COLLATE "C" PRIMARY KEY,
    org_id      TEXT COLLATE "C" NOT NULL REFERENCES orgs (id),
    key_hash    TEXT COLLATE "C" NOT NULL UNIQUE,
    prefix      TEXT COLLATE "C" NOT NULL,
    created_at  BIGINT NOT NULL,
    revoked_at  BIGINT
);

-- Short-lived tokens from GenerateAuthToken, also stored hashed.
CREATE TABLE auth_tokens (
    token_hash  TEXT COLLATE "C" PRIMARY KEY,
    org_id      TEXT COLLATE "C" NOT NULL REFERENCES orgs (id),
    app_id      TEXT COLLATE "C" NOT NULL REFERENCES apps (id),
    expires_at  BIGINT NOT NULL
);
CREATE INDEX auth_tokens_expiry ON auth_tokens (expires_at);

CREATE TABLE purses (
    id          TEXT COLLATE "C" PRIMARY KEY,
    org_id      TEXT COLLATE "C" NOT NULL REFERENCES orgs (id),
    currency    TEXT COLLATE "C" NOT NULL,
    created_at  BIGINT NOT NULL
);

-- Channel numbers an org may send from and receive on. `channel` is the lower-case name the SDKs
-- use (sms, voice, ussd, whatsapp, telegram, fb_messenger, email, or a payment channel).
CREATE TABLE channel_numbers (
    org_id      TEXT COLLATE "C" NOT NULL REFERENCES orgs (id),
    channel     TEXT COLLATE "C" NOT NULL,
    number      TEXT COLLATE "C" NOT NULL,
    created_at  BIGINT NOT NULL,
    PRIMARY KEY (org_id, channel, number)
);

CREATE TABLE customers (
    id                  TEXT COLLATE "C" PRIMARY KEY,
    org_id              TEXT COLLATE "C" NOT NULL REFERENCES orgs (id),
    created_at          BIGINT NOT NULL,
    decommissioned_at   BIGINT
);
CREATE INDEX customers_by_org ON customers (org_id);

-- A customer number (provider, number, partition) belongs to one customer per org. Partition is ''
-- when absent so that the primary key stays total.
CREATE TABLE customer_numbers (
    org_id       TEXT COLLATE "C" NOT NULL REFERENCES orgs (id),
    provider     BIGINT NOT NULL,
    number       TEXT COLLATE "C" NOT NULL,
    partition    TEXT COLLATE "C" NOT NULL DEFAULT '',
    customer_id  TEXT COLLATE "C" NOT NULL REFERENCES customers (id),
    created_at   BIGINT NOT NULL,
    PRIMARY KEY (org_id, provider, number, partition)
);
CREATE INDEX customer_numbers_by_customer ON customer_numbers (customer_id);

-- App data is per (app, customer): either text or bytes, as the DataMapValue that set it.
CREATE TABLE app_data (
    app_id       TEXT COLLATE "C" NOT NULL REFERENCES apps (id),
    customer_id  TEXT COLLATE "C" NOT NULL REFERENCES customers (id),
    text_value   TEXT COLLATE "C",
    bytes_value  BYTEA,
    updated_at   BIGINT NOT NULL,
    PRIMARY KEY (app_id, customer_id)
);
