-- +goose Up

-- An admin key may read every owner's objects and the operator's routes (/v1/daemons).
ALTER TABLE api_keys ADD COLUMN admin boolean NOT NULL DEFAULT false;

-- What a replica finished since it started, written with its heartbeat; and whether another
-- replica declared it dead after its lease lapsed (rather than it stopping on its own).
ALTER TABLE daemons ADD COLUMN completed bigint NOT NULL DEFAULT 0;
ALTER TABLE daemons ADD COLUMN failed bigint NOT NULL DEFAULT 0;
ALTER TABLE daemons ADD COLUMN declared_dead boolean NOT NULL DEFAULT false;

-- +goose Down
ALTER TABLE daemons DROP COLUMN declared_dead;
ALTER TABLE daemons DROP COLUMN failed;
ALTER TABLE daemons DROP COLUMN completed;
ALTER TABLE api_keys DROP COLUMN admin;
