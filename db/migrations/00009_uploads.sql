-- +goose Up
-- An Upload collects a file in parts; completing it assembles the named parts, in the order given,
-- into an ordinary file (files + file_lines) and removes the parts. status is pending, completed
-- or cancelled; a pending upload past expires_at reads as expired, and the janitor marks it so.
CREATE TABLE uploads (
    id               text        PRIMARY KEY,
    owner            text        NOT NULL,
    filename         text        NOT NULL,
    purpose          text        NOT NULL,
    mime_type        text        NOT NULL,
    bytes            bigint      NOT NULL,
    status           text        NOT NULL DEFAULT 'pending',
    -- expires_after of the file the upload becomes (NULL: the default for its purpose).
    file_expiry_secs bigint,
    file_id          text,
    created_at       timestamptz NOT NULL,
    expires_at       timestamptz NOT NULL,
    CONSTRAINT uploads_status_check CHECK (status IN ('pending', 'completed', 'cancelled', 'expired'))
);

CREATE INDEX uploads_pending_expires_at ON uploads (expires_at) WHERE status = 'pending';

-- A part's bytes are stored as chunks of at most 1 MiB, written with COPY while the part streams
-- in, so that neither Volley nor PostgreSQL ever holds a whole part in memory.
CREATE TABLE upload_parts (
    id         text        PRIMARY KEY,
    upload_id  text        NOT NULL REFERENCES uploads (id) ON DELETE CASCADE,
    bytes      bigint      NOT NULL DEFAULT 0,
    created_at timestamptz NOT NULL
);

CREATE INDEX upload_parts_upload_id ON upload_parts (upload_id);

CREATE TABLE upload_chunks (
    part_id text    NOT NULL REFERENCES upload_parts (id) ON DELETE CASCADE,
    seq     integer NOT NULL,
    data    bytea   NOT NULL,
    PRIMARY KEY (part_id, seq)
);

-- +goose StatementBegin
DO $$
BEGIN
    ALTER TABLE upload_chunks ALTER COLUMN data SET COMPRESSION lz4;
EXCEPTION WHEN feature_not_supported OR invalid_parameter_value THEN
    RAISE NOTICE 'lz4 compression is not available; keeping pglz';
END
$$;
-- +goose StatementEnd

-- +goose Down
DROP TABLE upload_chunks;
DROP TABLE upload_parts;
DROP TABLE uploads;
