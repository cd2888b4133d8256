-- The first acknowledgement by a person: when the incident was responded to.
ALTER TABLE incidents ADD COLUMN acknowledged_at TEXT;

-- A held request waiting for people, with the plan exactly as it was validated.
CREATE TABLE approvals (
    id              TEXT PRIMARY KEY,
    request_id      TEXT NOT NULL UNIQUE,
    incident_id     TEXT NOT NULL,
    alert_id        TEXT NOT NULL,
    policy          TEXT NOT NULL,
    step            INTEGER NOT NULL,
    action          TEXT NOT NULL,
    target          TEXT NOT NULL,
    params          TEXT NOT NULL,
    plan_hash       TEXT NOT NULL,
    severity        TEXT NOT NULL,
    requested_by    TEXT NOT NULL,
    reason          TEXT NOT NULL,
    required        INTEGER NOT NULL,
    created_at      TEXT NOT NULL,
    expires_at      TEXT NOT NULL,
    status          TEXT NOT NULL,
    decided_at      TEXT,
    run_request_id  TEXT NOT NULL DEFAULT '',
    outcome         TEXT,
    detail          TEXT NOT NULL DEFAULT ''
);
CREATE INDEX approvals_created ON approvals (created_at);
CREATE INDEX approvals_pending ON approvals (created_at) WHERE status = 'pending';
CREATE INDEX approvals_incident ON approvals (incident_id);

-- One decision per person per approval: the key itself refuses a second vote.
CREATE TABLE approval_votes (
    seq          INTEGER PRIMARY KEY AUTOINCREMENT,
    approval_id  TEXT NOT NULL REFERENCES approvals (id),
    voter        TEXT NOT NULL,
    choice       TEXT NOT NULL,
    reason       TEXT NOT NULL,
    plan_hash    TEXT NOT NULL,
    at           TEXT NOT NULL,
    UNIQUE (approval_id, voter)
);
