-- PostgreSQL twin of migrations/sqlite/0003_messaging.sql (see 0001 for what differs).
-- Messaging: messages both ways, sessions, consent. Message bodies are stored as the encoded
-- ChannelMessage the state returns; the columns beside it are what queries need.

CREATE TABLE messages (
    id                   TEXT COLLATE "C" PRIMARY KEY,
    org_id               TEXT COLLATE "C" NOT NULL REFERENCES orgs (id),
    customer_id          TEXT COLLATE "C" NOT NULL REFERENCES customers (id),
    direction            BIGINT NOT NULL,   -- CustomerEventDirection: 1 inbound, 2 outbound
    channel              BIGINT NOT NULL,   -- MessagingChannel
    channel_number       TEXT COLLATE "C" NOT NULL,
    session_id           TEXT COLLATE "C",
    status               BIGINT NOT NULL,   -- MessageDeliveryStatus
    provider_message_id  TEXT COLLATE "C",
    body                 BYTEA NOT NULL,      -- encoded ChannelMessage
    created_at           BIGINT NOT NULL,
    updated_at           BIGINT NOT NULL
);
CREATE INDEX messages_by_customer ON messages (customer_id, created_at);

CREATE TABLE messaging_sessions (
    id              TEXT COLLATE "C" PRIMARY KEY,
    org_id          TEXT COLLATE "C" NOT NULL REFERENCES orgs (id),
    customer_id     TEXT COLLATE "C" NOT NULL REFERENCES customers (id),
    channel         BIGINT NOT NULL,
    channel_number  TEXT COLLATE "C" NOT NULL,
    provider        BIGINT NOT NULL,
    number          TEXT COLLATE "C" NOT NULL,
    partition       TEXT COLLATE "C" NOT NULL DEFAULT '',
    app_id          TEXT COLLATE "C" NOT NULL REFERENCES apps (id),
    started_at      BIGINT NOT NULL,
    expires_at      BIGINT NOT NULL,
    ended_at        BIGINT,
    end_reason      BIGINT
);
CREATE INDEX messaging_sessions_by_customer ON messaging_sessions (customer_id, started_at);

CREATE TABLE messaging_consent (
    customer_id     TEXT COLLATE "C" NOT NULL REFERENCES customers (id),
    channel         BIGINT NOT NULL,
    channel_number  TEXT COLLATE "C" NOT NULL,
    blocked         BIGINT NOT NULL,
    updated_at      BIGINT NOT NULL,
    PRIMARY KEY (customer_id, channel, channel_number)
);

-- Replays import history by the provider's ids, once.
CREATE UNIQUE INDEX messages_by_provider_id ON messages (org_id, provider_message_id);
