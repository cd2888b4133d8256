-- The ledger of waf.block_ip: each address remediator added to an IP set, and when it comes out.
CREATE TABLE waf_blocks (
    ip_set_arn   TEXT NOT NULL,
    address      TEXT NOT NULL,
    blocked_at   TEXT NOT NULL,
    expires_at   TEXT NOT NULL,
    request_id   TEXT NOT NULL,
    incident_id  TEXT NOT NULL,
    PRIMARY KEY (ip_set_arn, address)
) WITHOUT ROWID;
CREATE INDEX waf_blocks_expiry ON waf_blocks (expires_at);

-- One row per entry added, kept after the entry is forgotten: the hourly cap counts them.
CREATE TABLE waf_block_additions (
    seq         INTEGER PRIMARY KEY AUTOINCREMENT,
    ip_set_arn  TEXT NOT NULL,
    added_at    TEXT NOT NULL
);
CREATE INDEX waf_block_additions_set ON waf_block_additions (ip_set_arn, added_at);
