-- Call detail records of the voice executor: one row per SIP call, written when it ends.
CREATE TABLE call_records (
    id                TEXT PRIMARY KEY,          -- cdr_…, one per call leg
    session_id        TEXT NOT NULL,             -- the voice session (a dial's legs share the caller's)
    org_id            TEXT,                      -- NULL when the number belonged to nobody
    app_id            TEXT,
    sip_call_id       TEXT NOT NULL,
    direction         TEXT NOT NULL,             -- inbound | outbound
    caller            TEXT NOT NULL,
    callee            TEXT NOT NULL,
    started_at        BIGINT NOT NULL,           -- INVITE received or sent (ms)
    answered_at       BIGINT,
    ended_at          BIGINT NOT NULL,
    duration_ms       BIGINT NOT NULL,           -- answered to ended; 0 if never answered
    ending            TEXT NOT NULL,             -- caller_hung_up | we_hung_up | cancelled | rejected | failed | refused
    sip_status        INTEGER NOT NULL,          -- the final response to the INVITE
    packets_sent      BIGINT NOT NULL,
    packets_received  BIGINT NOT NULL,
    packets_lost      BIGINT NOT NULL,
    jitter_ms         DOUBLE PRECISION NOT NULL
);
CREATE INDEX call_records_by_org ON call_records (org_id, started_at);
CREATE INDEX call_records_by_session ON call_records (session_id);
