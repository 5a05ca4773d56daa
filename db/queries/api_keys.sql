-- name: APIKeyInsert :one
INSERT INTO api_keys (owner, name, key_hash, key_prefix, admin)
VALUES (@owner, @name, @key_hash, @key_prefix, @admin)
RETURNING *;

-- name: APIKeyGetByHash :one
SELECT * FROM api_keys WHERE key_hash = @key_hash;

-- name: APIKeyList :many
SELECT * FROM api_keys ORDER BY id;

-- name: APIKeyRevoke :one
UPDATE api_keys SET revoked_at = coalesce(revoked_at, now())
WHERE id = @id
RETURNING *;
