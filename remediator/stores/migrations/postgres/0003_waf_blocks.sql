-- The ledger of waf.block_ip: each address remediator added to an IP set, and when it comes out.
CREATE TABLE waf_blocks (
    ip_set_arn   text NOT NULL,
    address      text NOT NULL,
    blocked_at   timestamptz NOT NULL,
    expires_at   timestamptz NOT NULL,
    request_id   text NOT NULL,
    incident_id  text NOT NULL,
    PRIMARY KEY (ip_set_arn, address)
);
CREATE INDEX waf_blocks_expiry ON waf_blocks (expires_at);

-- One row per entry added, kept after the entry is forgotten: the hourly cap counts them.
CREATE TABLE waf_block_additions (
    seq         bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    ip_set_arn  text NOT NULL,
    added_at    timestamptz NOT NULL
);
CREATE INDEX waf_block_additions_set ON waf_block_additions (ip_set_arn, added_at);
