-- PostgreSQL twin of migrations/sqlite/0009_payment_providers.sql (see 0001 for what differs).
-- Real payment providers: a payment channel number (cellular, airtime) may be bound to a
-- configured provider (M-Pesa, Africa's Talking airtime), and the requests a payment makes of it
-- wait in a durable queue until the provider accepts them.

-- The provider a transaction went through, and (provider_transaction_id) its reference there,
-- by which its result callback finds it.
ALTER TABLE payment_transactions ADD COLUMN provider TEXT COLLATE "C";
CREATE INDEX payment_transactions_by_provider_ref ON payment_transactions (provider, provider_transaction_id)
    WHERE provider IS NOT NULL;

-- A payment the app was told is pending, whose request (an STK push, a B2C payment, airtime) the
-- provider has not accepted yet. The row leaves when the provider accepts it (its reference is
-- then on the transaction) or the transaction ends; a restart finds the rest.
CREATE TABLE payment_requests (
    transaction_id   TEXT COLLATE "C" PRIMARY KEY REFERENCES payment_transactions (id),
    provider         TEXT COLLATE "C" NOT NULL,
    kind             TEXT COLLATE "C" NOT NULL,             -- collect (money in from the customer) | pay (money out)
    channel_number   TEXT COLLATE "C" NOT NULL,             -- ours: the short code, the airtime source
    destination      TEXT COLLATE "C" NOT NULL,             -- the customer's number, or the channel destination
    account          TEXT COLLATE "C" NOT NULL DEFAULT '',  -- an account reference at the destination
    currency         TEXT COLLATE "C" NOT NULL,
    amount           BIGINT NOT NULL,           -- minor units
    narration        TEXT COLLATE "C" NOT NULL DEFAULT '',
    attempts         BIGINT NOT NULL DEFAULT 0,
    next_attempt_at  BIGINT NOT NULL,
    claimed_until    BIGINT NOT NULL DEFAULT 0,
    last_error       TEXT COLLATE "C",
    expires_at       BIGINT NOT NULL,
    created_at       BIGINT NOT NULL
);
CREATE INDEX payment_requests_due ON payment_requests (provider, next_attempt_at);
