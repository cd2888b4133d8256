-- Retention (docs/DESIGN.md, "Retention"): what the purge walks, oldest first, page by page.
-- Indexes only: code that knows schema 3 or later runs on this version unchanged.
-- oldest-code: 3
CREATE INDEX IF NOT EXISTS alerts_received ON alerts (received_at, id);
CREATE INDEX IF NOT EXISTS incidents_ended ON incidents (updated_at, id) WHERE status <> 'open';
CREATE INDEX IF NOT EXISTS requests_finished ON requests (finished_at, id) WHERE state IN ('done', 'unknown');
CREATE INDEX IF NOT EXISTS requests_open_alert ON requests (alert_id) WHERE state IN ('claimed', 'running');
CREATE INDEX IF NOT EXISTS timers_done ON timers (due_at, id) WHERE state <> 'pending';
CREATE INDEX IF NOT EXISTS approvals_pending_alert ON approvals (alert_id) WHERE status = 'pending';
