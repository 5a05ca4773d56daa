-- +goose Up
CREATE TABLE api_keys (
    id           bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    owner        text        NOT NULL,
    name         text        NOT NULL DEFAULT '',
    key_hash     bytea       NOT NULL,
    key_prefix   text        NOT NULL,
    created_at   timestamptz NOT NULL DEFAULT now(),
    revoked_at   timestamptz,
    CONSTRAINT api_keys_key_hash_key UNIQUE (key_hash)
);

-- A file's id is a time-ordered UUIDv7 under the "file-" prefix, so ordering by id is ordering by
-- creation. Lines are not bound by a foreign key: they are written with COPY at full speed, and a
-- file and its lines are only ever created and removed together in one transaction.
CREATE TABLE files (
    id          text        PRIMARY KEY,
    owner       text        NOT NULL,
    filename    text        NOT NULL,
    purpose     text        NOT NULL,
    bytes       bigint      NOT NULL,
    line_count  integer     NOT NULL,
    created_at  timestamptz NOT NULL,
    expires_at  timestamptz,
    deleted_at  timestamptz
);

CREATE INDEX files_owner_id ON files (owner, id) WHERE deleted_at IS NULL;
CREATE INDEX files_expires_at ON files (expires_at) WHERE deleted_at IS NULL AND expires_at IS NOT NULL;
CREATE INDEX files_deleted_at ON files (deleted_at) WHERE deleted_at IS NOT NULL;

-- One row per physical line of an uploaded file, the raw bytes including the line's terminator.
-- custom_id, url, model and the body's byte range are NULL for whitespace-only lines, which are
-- kept so that the content reads back byte-identical but are not requests. body_start is 0-based
-- and body_end exclusive: the request body sent upstream is exactly those bytes of the line.
CREATE TABLE file_lines (
    file_id    text    NOT NULL,
    line       integer NOT NULL,
    custom_id  text,
    url        text,
    model      text,
    body_start integer,
    body_end   integer,
    data       bytea   NOT NULL,
    PRIMARY KEY (file_id, line)
);

-- +goose Down
DROP TABLE file_lines;
DROP TABLE files;
DROP TABLE api_keys;
