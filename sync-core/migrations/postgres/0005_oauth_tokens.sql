-- OAuth token sets shared by the processes of one store (`sync_core::tokens::StoreTokenStore`, api-core's
-- `TokenStore`), one row per key (one per OAuth account). A refreshed pair replaces the row only while it still
-- holds the refresh token it was refreshed from (`UPDATE ... WHERE refresh_token = $expected`), and
-- `claim_holder`/`claim_until` are the lease on that refresh token (milliseconds of the store's clock): one
-- session at a time may send it to the vendor. Any save clears the lease.
CREATE TABLE oauth_tokens (
    key           TEXT    NOT NULL PRIMARY KEY,
    access_token  TEXT    NOT NULL,
    refresh_token TEXT,
    expires_at    BIGINT,
    claim_holder  TEXT,
    claim_until   BIGINT,
    updated_at    BIGINT  NOT NULL
);
