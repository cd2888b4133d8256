-- Open requests by holder: reconcile and the recovery sweep look for them every few seconds.
-- An index only: code that knows schema 3 or later runs on this version unchanged.
-- oldest-code: 3
CREATE INDEX IF NOT EXISTS requests_open ON requests (holder) WHERE state IN ('claimed', 'running');
