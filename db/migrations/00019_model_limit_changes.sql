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

-- +goose Down
DROP TABLE model_limit_changes;
