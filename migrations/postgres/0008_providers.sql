-- PostgreSQL twin of migrations/sqlite/0008_providers.sql (see 0001 for what differs).
-- Real providers: a channel number may be bound to a configured provider (`[providers.<name>]`),
-- and messages for it wait in a durable queue until the provider accepts them.

-- The provider a channel number sends through; NULL keeps the simulator.
ALTER TABLE channel_numbers ADD COLUMN provider TEXT COLLATE "C";

-- Messages the app was told are QUEUED and a provider has not accepted yet. A row leaves when the
-- provider accepts the message (it becomes SENT) or it fails for good; a restart finds the rest.
CREATE TABLE provider_queue (
    message_id       TEXT COLLATE "C" PRIMARY KEY REFERENCES messages (id),
    provider         TEXT COLLATE "C" NOT NULL,
    org_id           TEXT COLLATE "C" NOT NULL,
    app_id           TEXT COLLATE "C" NOT NULL,
    customer_id      TEXT COLLATE "C" NOT NULL,
    channel          BIGINT NOT NULL,          -- MessagingChannel
    channel_number   TEXT COLLATE "C" NOT NULL,             -- ours: the sender
    customer_number  TEXT COLLATE "C" NOT NULL,             -- theirs: the recipient
    message          BYTEA NOT NULL,             -- encoded OutboundMessage
    attempts         BIGINT NOT NULL DEFAULT 0,
    next_attempt_at  BIGINT NOT NULL,
    claimed_until    BIGINT NOT NULL DEFAULT 0, -- a worker holds it until then
    last_error       TEXT COLLATE "C",
    expires_at       BIGINT NOT NULL,
    created_at       BIGINT NOT NULL
);
CREATE INDEX provider_queue_due ON provider_queue (provider, next_attempt_at);

-- What a provider called each part it accepted, so that its delivery receipts find the message.
-- A long SMS is several parts, each with its own id and receipt. Kept for the receipt window.
CREATE TABLE provider_parts (
    provider             TEXT COLLATE "C" NOT NULL,
    provider_message_id  TEXT COLLATE "C" NOT NULL,
    message_id           TEXT COLLATE "C" NOT NULL,
    app_id               TEXT COLLATE "C" NOT NULL,         -- who hears of the receipts
    part                 BIGINT NOT NULL,
    parts                BIGINT NOT NULL,
    status               BIGINT NOT NULL,      -- MessageDeliveryStatus of this part
    created_at           BIGINT NOT NULL,
    PRIMARY KEY (provider, provider_message_id)
);
CREATE INDEX provider_parts_by_message ON provider_parts (message_id);
CREATE INDEX provider_parts_by_age ON provider_parts (created_at);
