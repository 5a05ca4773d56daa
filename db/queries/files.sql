-- name: FileInsert :one
INSERT INTO files (id, owner, filename, purpose, bytes, line_count, created_at, expires_at)
VALUES (@id, @owner, @filename, @purpose, @bytes, @line_count, @created_at, @expires_at)
RETURNING *;

-- name: FileGetLive :one
-- A live file: not deleted and not expired. Expired files behave exactly as deleted ones.
SELECT * FROM files
WHERE id = @id AND owner = @owner AND deleted_at IS NULL
  AND (expires_at IS NULL OR expires_at > now());

-- name: FileListAsc :many
SELECT * FROM files
WHERE owner = @owner AND deleted_at IS NULL
  AND (expires_at IS NULL OR expires_at > now())
  AND (sqlc.narg(purpose)::text IS NULL OR purpose = sqlc.narg(purpose))
  AND (sqlc.narg(after)::text IS NULL OR id > sqlc.narg(after))
ORDER BY id ASC
LIMIT @max_rows;

-- name: FileListDesc :many
SELECT * FROM files
WHERE owner = @owner AND deleted_at IS NULL
  AND (expires_at IS NULL OR expires_at > now())
  AND (sqlc.narg(purpose)::text IS NULL OR purpose = sqlc.narg(purpose))
  AND (sqlc.narg(after)::text IS NULL OR id < sqlc.narg(after))
ORDER BY id DESC
LIMIT @max_rows;

-- name: FileMarkDeleted :one
UPDATE files SET deleted_at = now()
WHERE id = @id AND owner = @owner AND deleted_at IS NULL
  AND (expires_at IS NULL OR expires_at > now())
RETURNING id;

-- name: FileLinesDelete :exec
DELETE FROM file_lines WHERE file_id = @file_id;

-- name: FileLinesDeleteUnlessInUse :exec
-- Removes a deleted file's lines at once unless a running batch still reads them; the janitor
-- removes those later.
DELETE FROM file_lines
WHERE file_id = @file_id
  AND NOT EXISTS (SELECT 1 FROM batches WHERE input_file_id = @file_id AND status IN ('in_progress', 'cancelling'));

-- name: FileLinesChunk :many
-- Content is read in chunks of lines so that a download's memory stays flat however large the file.
SELECT line, data FROM file_lines
WHERE file_id = @file_id AND line > @after_line
ORDER BY line
LIMIT @max_rows;

-- name: FileLinesSelection :one
-- The extent of a selection of a file's lines: lines whose custom_id matches @search (a LIKE
-- pattern; NULL keeps every line), after skipping @skip of them, at most @take.
WITH sel AS (
    SELECT line, length(data) AS n FROM file_lines
    WHERE file_id = @file_id::text AND (sqlc.narg(search)::text IS NULL OR custom_id ILIKE sqlc.narg(search)::text)
    ORDER BY line OFFSET @skip::bigint LIMIT @take::bigint
)
SELECT count(*)::bigint AS lines, coalesce(sum(n), 0)::bigint AS bytes, coalesce(min(line), 0)::int AS first_line, coalesce(max(line), 0)::int AS last_line FROM sel;

-- name: FileLinesSelectedChunk :many
SELECT line, data FROM file_lines
WHERE file_id = @file_id::text AND line > @after_line::int AND line <= @last_line::int
  AND (sqlc.narg(search)::text IS NULL OR custom_id ILIKE sqlc.narg(search)::text)
ORDER BY line
LIMIT @max_rows;

-- name: FileStatsByModel :many
-- Per model: the requests of an input file, their body bytes, and the output-token caps
-- (max_completion_tokens, max_tokens or max_output_tokens) of those that set one.
WITH l AS (
    SELECT fl.model, fl.body_end - fl.body_start AS n,
           convert_from(substring(fl.data FROM fl.body_start + 1 FOR fl.body_end - fl.body_start), 'UTF8')::jsonb AS b
    FROM file_lines fl
    WHERE fl.file_id = @file_id::text AND fl.custom_id IS NOT NULL
), m AS (
    SELECT l.model, l.n,
           coalesce(CASE WHEN jsonb_typeof(l.b -> 'max_completion_tokens') = 'number' THEN (l.b ->> 'max_completion_tokens')::numeric END,
                    CASE WHEN jsonb_typeof(l.b -> 'max_tokens') = 'number' THEN (l.b ->> 'max_tokens')::numeric END,
                    CASE WHEN jsonb_typeof(l.b -> 'max_output_tokens') = 'number' THEN (l.b ->> 'max_output_tokens')::numeric END) AS cap
    FROM l
)
SELECT m.model::text AS model, count(*)::bigint AS requests, coalesce(sum(m.n), 0)::bigint AS body_bytes,
       count(m.cap)::bigint AS capped, coalesce(sum(m.cap), 0)::bigint AS cap_tokens
FROM m
GROUP BY m.model
ORDER BY m.model;

-- name: ModelAverageCompletionTokens :one
-- A model's average output tokens per completed request over its 50 most recent single-model
-- batches that completed any; completed = 0 when there is no history.
SELECT coalesce(sum(r.output_tokens), 0)::bigint AS output_tokens, coalesce(sum(r.completed), 0)::bigint AS completed
FROM (SELECT b.output_tokens, b.completed FROM batches b
      WHERE b.model = @model::text AND b.completed > 0 AND b.status IN ('completed', 'expired', 'cancelled')
      ORDER BY b.id DESC LIMIT 50) r;
