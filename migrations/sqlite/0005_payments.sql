-- Payments: a double-entry ledger in minor units (integers; never binary floats).
--
-- An account is a purse (org-level), a customer's wallet, or an external account standing for the
-- world outside Hodi (a customer's mobile money, a payment channel, an operator's top-up); external
-- accounts may go negative, purses and wallets never: `balance - held` (available) is checked by
-- the same UPDATE that takes the money, so no interleaving can overdraw.
CREATE TABLE payment_accounts (
    id           TEXT PRIMARY KEY,
    org_id       TEXT NOT NULL REFERENCES orgs (id),
    kind         TEXT NOT NULL,              -- purse | wallet | external
    owner        TEXT NOT NULL,              -- purse id | customer id | external name
    wallet_id    TEXT NOT NULL DEFAULT '',   -- the wallet's name (wallets only)
    currency     TEXT NOT NULL,
    balance      BIGINT NOT NULL DEFAULT 0,  -- actual, minor units
    held         BIGINT NOT NULL DEFAULT 0,  -- reserved by pending debits
    overdraft    INTEGER NOT NULL DEFAULT 0, -- 1: may go negative (external accounts)
    sequence_nr  BIGINT NOT NULL DEFAULT 0,  -- bumped on every change
    created_at   BIGINT NOT NULL,
    CHECK (overdraft = 1 OR (held >= 0 AND balance - held >= 0)),
    UNIQUE (org_id, kind, owner, wallet_id, currency)
);

CREATE TABLE payment_transactions (
    id                       TEXT PRIMARY KEY,
    org_id                   TEXT NOT NULL REFERENCES orgs (id),
    app_id                   TEXT,
    kind                     TEXT NOT NULL,    -- transfer | checkout | payout | channel | received | replay | top_up
    debit_party              BLOB NOT NULL,    -- encoded PaymentCounterParty
    credit_party             BLOB NOT NULL,
    debit_account            TEXT REFERENCES payment_accounts (id),
    credit_account           TEXT REFERENCES payment_accounts (id),
    debit_customer_id        TEXT,
    credit_customer_id       TEXT,
    purse_id                 TEXT,
    currency                 TEXT NOT NULL,
    amount                   BIGINT NOT NULL,  -- minor units, > 0
    status                   INTEGER NOT NULL, -- PaymentStatus
    held                     INTEGER NOT NULL DEFAULT 0, -- 1 while the debit account holds the amount
    provider_transaction_id  TEXT,
    narration                TEXT NOT NULL DEFAULT '',
    created_at               BIGINT NOT NULL,
    updated_at               BIGINT NOT NULL,
    CHECK (amount > 0)
);
CREATE INDEX payment_transactions_by_debit_customer ON payment_transactions (debit_customer_id, created_at);
CREATE INDEX payment_transactions_by_credit_customer ON payment_transactions (credit_customer_id, created_at);
CREATE UNIQUE INDEX payment_transactions_by_provider_id ON payment_transactions (org_id, provider_transaction_id)
    WHERE provider_transaction_id IS NOT NULL;

-- Every settled transaction writes exactly two entries that sum to zero.
CREATE TABLE payment_entries (
    id              INTEGER PRIMARY KEY,
    transaction_id  TEXT NOT NULL REFERENCES payment_transactions (id),
    account_id      TEXT NOT NULL REFERENCES payment_accounts (id),
    amount          BIGINT NOT NULL,  -- minor units; negative debits, positive credits
    created_at      BIGINT NOT NULL
);
CREATE INDEX payment_entries_by_account ON payment_entries (account_id, id);
CREATE UNIQUE INDEX payment_entries_once ON payment_entries (transaction_id, account_id);

-- Purse notifications share the outbox; their customer_id column holds the purse id.
ALTER TABLE outbox ADD COLUMN purse INTEGER NOT NULL DEFAULT 0;
