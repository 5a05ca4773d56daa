-- +goose Up
-- Lines of 2 KB and more cross PostgreSQL's compression threshold, and the default compressor
-- (pglz) costs more CPU than the rest of an upload. lz4 is several times faster; servers built
-- without it keep pglz.
-- +goose StatementBegin
DO $$
BEGIN
    ALTER TABLE file_lines ALTER COLUMN data SET COMPRESSION lz4;
    ALTER TABLE requests ALTER COLUMN body SET COMPRESSION lz4;
    ALTER TABLE requests ALTER COLUMN result SET COMPRESSION lz4;
EXCEPTION WHEN feature_not_supported OR invalid_parameter_value THEN
    RAISE NOTICE 'lz4 compression is not available; keeping pglz';
END
$$;
-- +goose StatementEnd

-- +goose Down
-- +goose StatementBegin
DO $$
BEGIN
    ALTER TABLE file_lines ALTER COLUMN data SET COMPRESSION pglz;
    ALTER TABLE requests ALTER COLUMN body SET COMPRESSION pglz;
    ALTER TABLE requests ALTER COLUMN result SET COMPRESSION pglz;
END
$$;
-- +goose StatementEnd
