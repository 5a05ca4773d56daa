-- +goose Up

-- Output and error files of a batch have no lines of their own: their content is the batch's
-- rendered results, read from requests.
ALTER TABLE files ADD COLUMN batch_id text;

CREATE TABLE batches (
    id                     text        PRIMARY KEY,
    owner                  text        NOT NULL,
    input_file_id          text        NOT NULL,
    endpoint               text        NOT NULL,
    completion_window      text        NOT NULL,
    model                  text,
    status                 text        NOT NULL,
    metadata               jsonb,
    output_expires_seconds integer,
    errors                 jsonb,
    created_at             timestamptz NOT NULL,
    in_progress_at         timestamptz,
    expires_at             timestamptz NOT NULL,
    finalizing_at          timestamptz,
    completed_at           timestamptz,
    failed_at              timestamptz,
    expired_at             timestamptz,
    cancelling_at          timestamptz,
    cancelled_at           timestamptz,
    -- Set once the completion window has passed: the batch settles as expired as soon as its
    -- in-flight requests are aborted and recorded.
    expiring_at            timestamptz,
    output_file_id         text,
    error_file_id          text,
    -- Counters kept in step with request transitions, in the same statements, so that a poll is one
    -- row read and the result files' sizes are known without reading them.
    total                  integer     NOT NULL,
    completed              integer     NOT NULL DEFAULT 0,
    failed                 integer     NOT NULL DEFAULT 0,
    output_bytes           bigint      NOT NULL DEFAULT 0,
    error_bytes            bigint      NOT NULL DEFAULT 0,
    input_tokens           bigint      NOT NULL DEFAULT 0,
    cached_tokens          bigint      NOT NULL DEFAULT 0,
    output_tokens          bigint      NOT NULL DEFAULT 0,
    reasoning_tokens       bigint      NOT NULL DEFAULT 0,
    total_tokens           bigint      NOT NULL DEFAULT 0
);

CREATE INDEX batches_owner_id ON batches (owner, id);
CREATE INDEX batches_active ON batches (expires_at) WHERE status IN ('in_progress', 'cancelling');
CREATE INDEX batches_input_file ON batches (input_file_id) WHERE status IN ('in_progress', 'cancelling');

-- A replica's dispatcher. Requests it runs are leased to it for as long as it heartbeats.
CREATE TABLE daemons (
    id           bigint      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    host         text        NOT NULL,
    pid          integer     NOT NULL,
    started_at   timestamptz NOT NULL DEFAULT now(),
    heartbeat_at timestamptz NOT NULL DEFAULT now(),
    stopped_at   timestamptz
);

CREATE INDEX daemons_live ON daemons (heartbeat_at) WHERE stopped_at IS NULL;

-- One row per request to send upstream. A batch's requests read their body from the input file's
-- lines; other requests carry it. state: pending → running → completed | failed | cancelled |
-- expired, and running → pending for a retry or a rescue. attempt counts claims and fences every
-- write of a result: only (running, this daemon, this attempt) may record one.
CREATE TABLE requests (
    id          bigint      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    batch_id    text,
    line        integer,
    owner       text        NOT NULL,
    model       text        NOT NULL,
    url         text        NOT NULL,
    custom_id   text,
    file_id     text,
    body        bytea,
    state       text        NOT NULL DEFAULT 'pending',
    attempt     integer     NOT NULL DEFAULT 0,
    failures    integer     NOT NULL DEFAULT 0,
    not_before  timestamptz NOT NULL DEFAULT '-infinity',
    deadline    timestamptz NOT NULL,
    daemon_id   bigint,
    claimed_at  timestamptz,
    finished_at timestamptz,
    -- The rendered output line (completed) or error line (failed, cancelled, expired), '\n'-terminated.
    result      bytea
) WITH (autovacuum_vacuum_scale_factor = 0.02, autovacuum_analyze_scale_factor = 0.02);

CREATE INDEX requests_pending ON requests (model, owner, deadline, id) WHERE state = 'pending';
CREATE INDEX requests_running ON requests (model, owner) WHERE state = 'running';
CREATE INDEX requests_daemon ON requests (daemon_id) WHERE state = 'running';
CREATE UNIQUE INDEX requests_batch_line ON requests (batch_id, line) WHERE batch_id IS NOT NULL;

-- +goose Down
DROP TABLE requests;
DROP TABLE daemons;
DROP TABLE batches;
ALTER TABLE files DROP COLUMN batch_id;
