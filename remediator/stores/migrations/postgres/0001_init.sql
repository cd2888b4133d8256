-- The PostgreSQL schema: the same tables as SQLite, with native types (timestamptz, jsonb, text[]).
-- Applied into the configured schema (search_path) under an advisory lock, so replicas starting
-- together apply it once.

-- Alerts as recorded: one row per occurrence, claimed for processing by one holder at a time.
CREATE TABLE alerts (
    seq            bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    id             text NOT NULL UNIQUE,
    source         text NOT NULL,
    name           text NOT NULL,
    status         text NOT NULL,
    fingerprint    text NOT NULL,
    group_key      text NOT NULL,
    starts_at      timestamptz NOT NULL,
    ends_at        timestamptz,
    received_at    timestamptz NOT NULL,
    labels         jsonb NOT NULL,
    annotations    jsonb NOT NULL,
    summary        text NOT NULL,
    actionable     boolean NOT NULL,
    severity_hint  text,
    dedup_keys     jsonb NOT NULL,
    incident_id    text,
    correlated     boolean NOT NULL DEFAULT false,
    processed_at   timestamptz,
    claimed_by     text,
    claimed_until  timestamptz
);
CREATE INDEX alerts_unprocessed ON alerts (seq) WHERE processed_at IS NULL;
CREATE INDEX alerts_fingerprint ON alerts (fingerprint, status, starts_at);

-- Every dedup key ever seen: a delivery with any known key is a duplicate.
CREATE TABLE alert_keys (
    key       text PRIMARY KEY,
    alert_id  text NOT NULL
);

CREATE TABLE counters (
    name   text PRIMARY KEY,
    value  bigint NOT NULL
);

CREATE TABLE incidents (
    id               text PRIMARY KEY,
    correlation_key  text NOT NULL,
    title            text NOT NULL,
    severity         text NOT NULL,
    status           text NOT NULL,
    phase            text NOT NULL,
    opened_at        timestamptz NOT NULL,
    updated_at       timestamptz NOT NULL,
    resolved_at      timestamptz,
    closed_at        timestamptz,
    alert_count      integer NOT NULL,
    firing_count     integer NOT NULL,
    phase_times      jsonb NOT NULL,
    root_cause       text NOT NULL DEFAULT '',
    acknowledged_by  text NOT NULL DEFAULT ''
);
CREATE UNIQUE INDEX incidents_open_key ON incidents (correlation_key) WHERE status = 'open';
CREATE INDEX incidents_opened ON incidents (opened_at);

-- The fingerprints of each incident's alerts that are firing now (an alert storm may hold thousands).
CREATE TABLE incident_firing (
    incident_id  text NOT NULL,
    fingerprint  text NOT NULL,
    PRIMARY KEY (incident_id, fingerprint)
);

CREATE TABLE timeline (
    seq          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    incident_id  text NOT NULL,
    at           timestamptz NOT NULL,
    kind         text NOT NULL,
    message      text NOT NULL,
    alert_id     text NOT NULL DEFAULT '',
    request_id   text NOT NULL DEFAULT '',
    data         jsonb NOT NULL DEFAULT '{}'
);
CREATE INDEX timeline_incident ON timeline (incident_id, seq);

-- One row per action request: the claim (a unique key) that makes execution at-most-once.
CREATE TABLE requests (
    id           text PRIMARY KEY,
    alert_id     text NOT NULL,
    incident_id  text NOT NULL,
    policy       text NOT NULL,
    step         integer NOT NULL,
    action       text NOT NULL,
    target       text NOT NULL,
    params       jsonb NOT NULL,
    severity     text NOT NULL,
    risk         text NOT NULL,
    plan_hash    text NOT NULL,
    origin       text NOT NULL,
    created_at   timestamptz NOT NULL,
    state        text NOT NULL,
    holder       text NOT NULL,
    claimed_at   timestamptz NOT NULL,
    started_at   timestamptz,
    finished_at  timestamptz
);
CREATE INDEX requests_open ON requests (holder) WHERE state IN ('claimed', 'running');

CREATE TABLE audit (
    seq              bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    request_id       text NOT NULL UNIQUE,
    at               timestamptz NOT NULL,
    incident_id      text NOT NULL,
    alert_id         text NOT NULL,
    policy           text NOT NULL,
    action           text NOT NULL,
    target           text NOT NULL,
    params           jsonb NOT NULL,
    plan_hash        text NOT NULL,
    mode             text NOT NULL,
    verdict          text NOT NULL,
    decision_reason  text NOT NULL,
    decision_detail  text NOT NULL,
    outcome          text NOT NULL,
    failure_reason   text,
    detail           jsonb NOT NULL,
    duration_ms      double precision NOT NULL,
    origin           text NOT NULL
);
CREATE INDEX audit_incident ON audit (incident_id, seq);

CREATE TABLE timers (
    id             text PRIMARY KEY,
    kind           text NOT NULL,
    due_at         timestamptz NOT NULL,
    payload        jsonb NOT NULL,
    state          text NOT NULL,
    claimed_by     text,
    claimed_until  timestamptz,
    fired_at       timestamptz
);
CREATE INDEX timers_due ON timers (due_at) WHERE state = 'pending';
