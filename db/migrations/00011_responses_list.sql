-- +goose Up

-- An owner's responses are listed newest first (GET /v1/responses), page by page.
CREATE INDEX responses_owner ON responses (owner, id DESC) WHERE deleted_at IS NULL;

-- +goose Down
DROP INDEX responses_owner;
