-- The first acknowledgement by a person: when the incident was responded to.
ALTER TABLE incidents ADD COLUMN acknowledged_at timestamptz;

-- A held request waiting for people, with the plan exactly as it was validated.
CREATE TABLE approvals (
    id              text PRIMARY KEY,
    request_id      text NOT NULL UNIQUE,
    incident_id     text NOT NULL,
    alert_id        text NOT NULL,
    policy          text NOT NULL,
    step            integer NOT NULL,
    action          text NOT NULL,
    target          text NOT NULL,
    params          jsonb NOT NULL,
    plan_hash       text NOT NULL,
    severity        text NOT NULL,
    requested_by    text NOT NULL,
    reason          text NOT NULL,
    required        integer NOT NULL,
    created_at      timestamptz NOT NULL,
    expires_at      timestamptz NOT NULL,
    status          text NOT NULL,
    decided_at      timestamptz,
    run_request_id  text NOT NULL DEFAULT '',
    outcome         text,
    detail          text NOT NULL DEFAULT ''
);
CREATE INDEX approvals_created ON approvals (created_at);
CREATE INDEX approvals_pending ON approvals (created_at) WHERE status = 'pending';
CREATE INDEX approvals_incident ON approvals (incident_id);

-- One decision per person per approval: the key itself refuses a second vote.
CREATE TABLE approval_votes (
    seq          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    approval_id  text NOT NULL REFERENCES approvals (id),
    voter        text NOT NULL,
    choice       text NOT NULL,
    reason       text NOT NULL,
    plan_hash    text NOT NULL,
    at           timestamptz NOT NULL,
    UNIQUE (approval_id, voter)
);
