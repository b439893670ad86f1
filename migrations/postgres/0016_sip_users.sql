-- SIP users an org provisions for its own phones and softphones (`hodi provision sip-user`). They
-- register with Hodi as their registrar (digest authentication; the registrations themselves are
-- kept in memory by the node they registered with) so that `dial` can ring them, and the calls
-- they place go to the app of `number`, one of the org's voice numbers.
-- The password is never stored: HA1 = H(user:domain:password) for MD5 and for SHA-256 (the
-- domain is the digest realm), which is what a digest check needs.
-- A domain belongs to one org (enforced on provisioning); a user name and an extension are
-- unique in their domain.
CREATE TABLE sip_users (
    org_id TEXT NOT NULL REFERENCES orgs(id),
    domain TEXT NOT NULL,
    username TEXT NOT NULL,
    extension TEXT,
    ha1_md5 TEXT NOT NULL,
    ha1_sha256 TEXT NOT NULL,
    number TEXT,
    created_at BIGINT NOT NULL,
    PRIMARY KEY (domain, username)
);
CREATE UNIQUE INDEX sip_users_extension ON sip_users (domain, extension);
CREATE INDEX sip_users_org ON sip_users (org_id);
