-- name: UploadInsert :one
INSERT INTO uploads (id, owner, filename, purpose, mime_type, bytes, file_expiry_secs, created_at, expires_at)
VALUES (@id, @owner, @filename, @purpose, @mime_type, @bytes, sqlc.narg(file_expiry_secs), @created_at, @expires_at)
RETURNING *;

-- name: UploadGet :one
SELECT * FROM uploads WHERE id = @id AND owner = @owner;

-- name: UploadLock :one
-- Locks an upload against a concurrent complete or cancel. It does not wait for parts being
-- stored (they hold only a key-share lock through their foreign key).
SELECT * FROM uploads WHERE id = @id AND owner = @owner FOR NO KEY UPDATE;

-- name: UploadStateForPart :one
-- Read by a part just before it commits: waits for a complete or cancel in progress, then sees
-- its outcome. stored is what the upload's parts hold so far, this one included.
SELECT u.status, u.expires_at, u.bytes,
       (SELECT coalesce(sum(p.bytes), 0) FROM upload_parts p WHERE p.upload_id = u.id)::bigint AS stored
FROM uploads u WHERE u.id = @id FOR SHARE;

-- name: UploadPartInsert :exec
INSERT INTO upload_parts (id, upload_id, created_at) VALUES (@id, @upload_id, @created_at);

-- name: UploadPartSetBytes :exec
UPDATE upload_parts SET bytes = @bytes WHERE id = @id;

-- name: UploadPartsGet :many
-- The named parts of one upload (in no particular order).
SELECT id, bytes FROM upload_parts WHERE upload_id = @upload_id AND id = ANY(@ids::text[]);

-- name: UploadChunksRead :many
SELECT seq, data FROM upload_chunks
WHERE part_id = @part_id AND seq > @after_seq
ORDER BY seq
LIMIT @max_rows;

-- name: UploadComplete :one
UPDATE uploads SET status = 'completed', file_id = @file_id WHERE id = @id RETURNING *;

-- name: UploadCancel :one
UPDATE uploads SET status = 'cancelled' WHERE id = @id RETURNING *;

-- name: UploadPartsDelete :exec
DELETE FROM upload_parts WHERE upload_id = @upload_id;

-- name: UploadsExpire :execrows
-- Marks pending uploads past their hour expired, and removes their parts with them (cascade).
WITH expired AS (
    UPDATE uploads SET status = 'expired'
    WHERE status = 'pending' AND expires_at <= now()
    RETURNING id
)
DELETE FROM upload_parts WHERE upload_id IN (SELECT id FROM expired);
