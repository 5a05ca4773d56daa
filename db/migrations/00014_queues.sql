-- +goose Up

-- One row per (model, owner) that has or had requests: how many are pending and running, kept
-- exact by statement triggers on requests, so that a claim finds the owners with work and their
-- running counts without scanning the requests themselves. served_at is when one of the pair's
-- requests last started running: owners at the same level take turns by it.
CREATE TABLE queues (
    model     text        NOT NULL,
    owner     text        NOT NULL,
    pending   integer     NOT NULL DEFAULT 0,
    running   integer     NOT NULL DEFAULT 0,
    served_at timestamptz NOT NULL DEFAULT '-infinity',
    PRIMARY KEY (model, owner)
) WITH (fillfactor = 50);

CREATE INDEX queues_ready ON queues (model, running, served_at) WHERE pending > 0;
CREATE INDEX queues_busy ON queues (model) INCLUDE (running) WHERE running > 0;

-- Claims count the running requests of the other replicas, per model.
CREATE INDEX requests_running_daemon ON requests (model, daemon_id) WHERE state = 'running';
DROP INDEX requests_running;

-- The counters move by the rows a statement changed, in (model, owner) order, so that two
-- statements touching the same pairs lock them in the same order.
-- +goose StatementBegin
CREATE FUNCTION queues_on_insert() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO queues AS q (model, owner, pending, running, served_at)
    SELECT n.model, n.owner, count(*) FILTER (WHERE n.state = 'pending'), count(*) FILTER (WHERE n.state = 'running'),
           CASE WHEN bool_or(n.state = 'running') THEN now() ELSE '-infinity' END
    FROM new_rows n WHERE n.state IN ('pending', 'running')
    GROUP BY n.model, n.owner ORDER BY n.model, n.owner
    ON CONFLICT (model, owner) DO UPDATE SET pending = q.pending + excluded.pending, running = q.running + excluded.running,
        served_at = greatest(q.served_at, excluded.served_at);
    RETURN NULL;
END $$;
-- +goose StatementEnd

-- +goose StatementBegin
CREATE FUNCTION queues_on_update() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO queues AS q (model, owner, pending, running, served_at)
    SELECT d.model, d.owner, sum(d.p)::int, sum(d.r)::int,
           CASE WHEN bool_or(d.started) THEN now() ELSE '-infinity' END
    FROM (
        SELECT n.model, n.owner, (n.state = 'pending')::int AS p, (n.state = 'running')::int AS r, n.state = 'running' AS started FROM new_rows n
        UNION ALL
        SELECT o.model, o.owner, -(o.state = 'pending')::int, -(o.state = 'running')::int, false FROM old_rows o
    ) d
    GROUP BY d.model, d.owner HAVING sum(d.p) <> 0 OR sum(d.r) <> 0
    ORDER BY d.model, d.owner
    ON CONFLICT (model, owner) DO UPDATE SET pending = q.pending + excluded.pending, running = q.running + excluded.running,
        served_at = CASE WHEN excluded.running > 0 THEN greatest(q.served_at, excluded.served_at) ELSE q.served_at END;
    RETURN NULL;
END $$;
-- +goose StatementEnd

-- +goose StatementBegin
CREATE FUNCTION queues_on_delete() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO queues AS q (model, owner, pending, running)
    SELECT o.model, o.owner, -count(*) FILTER (WHERE o.state = 'pending'), -count(*) FILTER (WHERE o.state = 'running')
    FROM old_rows o WHERE o.state IN ('pending', 'running')
    GROUP BY o.model, o.owner ORDER BY o.model, o.owner
    ON CONFLICT (model, owner) DO UPDATE SET pending = q.pending + excluded.pending, running = q.running + excluded.running;
    RETURN NULL;
END $$;
-- +goose StatementEnd

CREATE TRIGGER requests_queues_insert AFTER INSERT ON requests
    REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION queues_on_insert();
CREATE TRIGGER requests_queues_update AFTER UPDATE ON requests
    REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION queues_on_update();
CREATE TRIGGER requests_queues_delete AFTER DELETE ON requests
    REFERENCING OLD TABLE AS old_rows FOR EACH STATEMENT EXECUTE FUNCTION queues_on_delete();

-- Requests already queued when this runs.
INSERT INTO queues (model, owner, pending, running)
SELECT model, owner, count(*) FILTER (WHERE state = 'pending'), count(*) FILTER (WHERE state = 'running')
FROM requests WHERE state IN ('pending', 'running') GROUP BY model, owner;

-- +goose Down
DROP TRIGGER requests_queues_delete ON requests;
DROP TRIGGER requests_queues_update ON requests;
DROP TRIGGER requests_queues_insert ON requests;
DROP FUNCTION queues_on_delete();
DROP FUNCTION queues_on_update();
DROP FUNCTION queues_on_insert();
CREATE INDEX requests_running ON requests (model, owner) WHERE state = 'running';
DROP INDEX requests_running_daemon;
DROP TABLE queues;
