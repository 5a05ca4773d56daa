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
