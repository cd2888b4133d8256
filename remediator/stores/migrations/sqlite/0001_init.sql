-- Alerts as recorded: one row per occurrence, claimed for processing by one holder at a time.
CREATE TABLE alerts (
    seq            INTEGER PRIMARY KEY AUTOINCREMENT,
    id             TEXT NOT NULL UNIQUE,
    source         TEXT NOT NULL,
    name           TEXT NOT NULL,
    status         TEXT NOT NULL,
    fingerprint    TEXT NOT NULL,
    group_key      TEXT NOT NULL,
    starts_at      TEXT NOT NULL,
    ends_at        TEXT,
    received_at    TEXT NOT NULL,
    labels         TEXT NOT NULL,
    annotations    TEXT NOT NULL,
    summary        TEXT NOT NULL,
    actionable     INTEGER NOT NULL,
    severity_hint  TEXT,
    dedup_keys     TEXT NOT NULL,
    incident_id    TEXT,
    correlated     INTEGER NOT NULL DEFAULT 0,
    processed_at   TEXT,
    claimed_by     TEXT,
    claimed_until  TEXT
);
CREATE INDEX alerts_unprocessed ON alerts (seq) WHERE processed_at IS NULL;
-- For the stale check only (a firing that arrives after its own resolution): resolved alerts.
CREATE INDEX alerts_resolved ON alerts (fingerprint, starts_at) WHERE status = 'resolved';

-- Every dedup key ever seen: a delivery with any known key is a duplicate.
CREATE TABLE alert_keys (
    key       TEXT PRIMARY KEY,
    alert_id  TEXT NOT NULL
) WITHOUT ROWID;

CREATE TABLE counters (
    name   TEXT PRIMARY KEY,
    value  INTEGER NOT NULL
) WITHOUT ROWID;

CREATE TABLE incidents (
    id               TEXT PRIMARY KEY,
    correlation_key  TEXT NOT NULL,
    title            TEXT NOT NULL,
    severity         TEXT NOT NULL,
    status           TEXT NOT NULL,
    phase            TEXT NOT NULL,
    opened_at        TEXT NOT NULL,
    updated_at       TEXT NOT NULL,
    resolved_at      TEXT,
    closed_at        TEXT,
    alert_count      INTEGER NOT NULL,
    firing_count     INTEGER NOT NULL,
    phase_times      TEXT NOT NULL,
    root_cause       TEXT NOT NULL DEFAULT '',
    acknowledged_by  TEXT NOT NULL DEFAULT ''
);
CREATE UNIQUE INDEX incidents_open_key ON incidents (correlation_key) WHERE status = 'open';
CREATE INDEX incidents_opened ON incidents (opened_at);

-- The fingerprints of each incident's alerts that are firing now (an alert storm may hold thousands).
CREATE TABLE incident_firing (
    incident_id  TEXT NOT NULL,
    fingerprint  TEXT NOT NULL,
    PRIMARY KEY (incident_id, fingerprint)
) WITHOUT ROWID;

CREATE TABLE timeline (
    seq          INTEGER PRIMARY KEY AUTOINCREMENT,
    incident_id  TEXT NOT NULL,
    at           TEXT NOT NULL,
    kind         TEXT NOT NULL,
    message      TEXT NOT NULL,
    alert_id     TEXT NOT NULL DEFAULT '',
    request_id   TEXT NOT NULL DEFAULT '',
    data         TEXT NOT NULL DEFAULT '{}'
);
CREATE INDEX timeline_incident ON timeline (incident_id, seq);

-- One row per action request: the claim that makes execution at-most-once, and, once decided,
-- its one audit record (the `audit` view). Finishing a request is one UPDATE of this row.
CREATE TABLE requests (
    id               TEXT PRIMARY KEY,
    alert_id         TEXT NOT NULL,
    incident_id      TEXT NOT NULL,
    policy           TEXT NOT NULL,
    step             INTEGER NOT NULL,
    action           TEXT NOT NULL,
    target           TEXT NOT NULL,
    params           TEXT NOT NULL,
    severity         TEXT NOT NULL,
    risk             TEXT NOT NULL,
    plan_hash        TEXT NOT NULL,
    origin           TEXT NOT NULL,
    created_at       TEXT NOT NULL,
    state            TEXT NOT NULL,
    holder           TEXT NOT NULL,
    claimed_at       TEXT NOT NULL,
    started_at       TEXT,
    finished_at      TEXT,
    mode             TEXT,
    verdict          TEXT,
    decision_reason  TEXT,
    decision_detail  TEXT,
    outcome          TEXT,
    failure_reason   TEXT,
    detail           TEXT,
    duration_ms      REAL
);
CREATE INDEX requests_running ON requests (state) WHERE state = 'running';
CREATE INDEX requests_incident ON requests (incident_id);

CREATE VIEW audit AS
    SELECT rowid AS seq, id AS request_id, finished_at AS at, incident_id, alert_id, policy, action, target,
           params, plan_hash, mode, verdict, decision_reason, decision_detail, outcome, failure_reason, detail,
           duration_ms, origin
    FROM requests WHERE verdict IS NOT NULL;

CREATE TABLE timers (
    id             TEXT PRIMARY KEY,
    kind           TEXT NOT NULL,
    due_at         TEXT NOT NULL,
    payload        TEXT NOT NULL,
    state          TEXT NOT NULL,
    claimed_by     TEXT,
    claimed_until  TEXT,
    fired_at       TEXT
);
CREATE INDEX timers_due ON timers (due_at) WHERE state = 'pending';
