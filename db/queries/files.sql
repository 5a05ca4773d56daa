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
