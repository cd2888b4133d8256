-- Open requests by holder: reconcile and the recovery sweep look for them every few seconds.
CREATE INDEX IF NOT EXISTS requests_open ON requests (holder) WHERE state IN ('claimed', 'running');
