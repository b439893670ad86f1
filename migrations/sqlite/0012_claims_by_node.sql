-- Which node claimed a provider-queue row or payment request (its cluster_nodes id; '' on a single
-- node), so that on a shared database the claims of a node that died are released as soon as it
-- counts as dead, not when they run out, and a live node's claims are never released by another.
ALTER TABLE provider_queue ADD COLUMN claimed_by TEXT NOT NULL DEFAULT '';
ALTER TABLE payment_requests ADD COLUMN claimed_by TEXT NOT NULL DEFAULT '';
-- The rows claimed now or once (claims that ran out keep their time): few, whatever the queue holds.
CREATE INDEX provider_queue_claimed ON provider_queue (claimed_by) WHERE claimed_until > 0;
CREATE INDEX payment_requests_claimed ON payment_requests (claimed_by) WHERE claimed_until > 0;
