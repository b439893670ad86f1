-- PostgreSQL twin of migrations/sqlite/0006_calls.sql (see 0001 for what differs).
-- Call detail records of the voice executor: one row per SIP call, written when it ends.
CREATE TABLE call_records (
    id                TEXT COLLATE "C" PRIMARY KEY,          -- cdr_…, one per call leg
    session_id        TEXT COLLATE "C" NOT NULL,             -- the voice session (a dial's legs share the caller's)
    org_id            TEXT COLLATE "C",                      -- NULL when the number belonged to nobody
    app_id            TEXT COLLATE "C",
    sip_call_id       TEXT COLLATE "C" NOT NULL,
    direction         TEXT COLLATE "C" NOT NULL,             -- inbound | outbound
    caller            TEXT COLLATE "C" NOT NULL,
    callee            TEXT COLLATE "C" NOT NULL,
    started_at        BIGINT NOT NULL,           -- INVITE received or sent (ms)
    answered_at       BIGINT,
    ended_at          BIGINT NOT NULL,
    duration_ms       BIGINT NOT NULL,           -- answered to ended; 0 if never answered
    ending            TEXT COLLATE "C" NOT NULL,             -- caller_hung_up | we_hung_up | cancelled | rejected | failed | refused
    sip_status        BIGINT NOT NULL,          -- the final response to the INVITE
    packets_sent      BIGINT NOT NULL,
    packets_received  BIGINT NOT NULL,
    packets_lost      BIGINT NOT NULL,
    jitter_ms         DOUBLE PRECISION NOT NULL
);
CREATE INDEX call_records_by_org ON call_records (org_id, started_at);
CREATE INDEX call_records_by_session ON call_records (session_id);
