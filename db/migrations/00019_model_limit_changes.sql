-- +goose Up

-- Every move of an adaptive model's effective limit, written in the statement that moves it: the
-- limit's history, for operators and for the check that no upstream saw more calls at once than
-- the limit then in force. The janitor keeps a day of it.
CREATE TABLE model_limit_changes (
    id        bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    model     text        NOT NULL,
    at        timestamptz NOT NULL DEFAULT clock_timestamp(),
    effective int         NOT NULL,
    cause     text        NOT NULL CHECK (cause IN ('cut', 'raise'))
);
CREATE INDEX model_limit_changes_model_at ON model_limit_changes (model, at);

-- The error line of a batch request its user cancelled, as every statement that ends one writes it.
-- +goose StatementBegin
CREATE FUNCTION request_cancelled_line(batch_id text, line int, custom_id text) RETURNS bytea
LANGUAGE sql STABLE PARALLEL SAFE AS $$
    SELECT convert_to(json_build_object(
        'id', 'batch_req_' || md5(batch_id || ':' || line),
        'custom_id', custom_id,
        'response', NULL,
        'error', json_build_object('code', 'request_cancelled', 'message', 'This request was cancelled before it completed.')
    )::text || E'\n', 'UTF8')
$$;
-- +goose StatementEnd

-- +goose Down
DROP FUNCTION request_cancelled_line(text, int, text);
DROP TABLE model_limit_changes;
