-- Market-data tables and the dagrun.* run-state tables; idempotent (safe to apply again).
--
-- Apply with `dagrun initdb` or `psql -v ON_ERROR_STOP=1 -f schema.sql`. Every statement is
-- guarded (IF NOT EXISTS, DO blocks), so applying it again changes nothing, and the whole file
-- is one transaction: it applies completely or not at all.

BEGIN;

-- "already exists, skipping" notices are expected on every run after the first.
SET LOCAL client_min_messages = warning;

-- Two `initdb` at once would race on CREATE ... IF NOT EXISTS (a unique violation in the
-- catalogs); this lock makes the second wait for the first. The key is arbitrary but fixed.
DO $$ BEGIN PERFORM pg_advisory_xact_lock(7423001); END $$;

-- ---------------------------------------------------------------------------------------
-- Market data
-- ---------------------------------------------------------------------------------------

-- The broker's instrument master (Kite: GET /instruments, a CSV dump), one row per
-- instrument token; load_instruments refreshes it, list_instruments selects from it.
CREATE TABLE IF NOT EXISTS instruments (
    instrument_token bigint PRIMARY KEY,
    exchange_token   bigint,
    tradingsymbol    text NOT NULL,
    name             text,
    last_price       numeric,
    expiry           date,
    strike           numeric,
    tick_size        numeric,
    lot_size         integer,
    instrument_type  text,
    segment          text,
    exchange         text NOT NULL,
    updated_at       timestamptz NOT NULL DEFAULT now()
);

-- list_instruments filters by exchange and instrument type.
CREATE INDEX IF NOT EXISTS instruments_exchange_type_idx
    ON instruments (exchange, instrument_type);

-- Historical OHLCV candles, one row per instrument, candle interval and candle start time.
-- The primary key (instrument_token, candle_interval, ts) also serves compute_date_ranges'
-- "latest stored candle per instrument" query, so no separate index is needed.
CREATE TABLE IF NOT EXISTS kite_ohlcv_historic (
    instrument_token bigint      NOT NULL,
    tradingsymbol    text        NOT NULL,
    exchange         text        NOT NULL,
    candle_interval  text        NOT NULL,
    ts               timestamptz NOT NULL,
    open             numeric     NOT NULL,
    high             numeric     NOT NULL,
    low              numeric     NOT NULL,
    close            numeric     NOT NULL,
    volume           bigint      NOT NULL,
    oi               bigint,
    ingested_at      timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (instrument_token, candle_interval, ts)
);

-- With TimescaleDB installed on the server, the candles become a hypertable partitioned on ts
-- (existing rows are moved in). Without it, or when the extension cannot be created here
-- (not preloaded, no privilege), the plain table above is used and a WARNING says why.
DO $$
BEGIN
    IF EXISTS (SELECT 1 FROM pg_available_extensions WHERE name = 'timescaledb') THEN
        BEGIN
            CREATE EXTENSION IF NOT EXISTS timescaledb;
            PERFORM create_hypertable('kite_ohlcv_historic', 'ts',
                                      if_not_exists => true, migrate_data => true);
        EXCEPTION WHEN OTHERS THEN
            RAISE WARNING 'kite_ohlcv_historic stays a plain table: %', SQLERRM;
        END;
    END IF;
END
$$;

-- The source-neutral asset registry: one row per source and symbol (Binance: the pair, e.g.
-- BTCUSDT; Yahoo: the ticker, e.g. AAPL or WSU.DE; CoinGecko: the coin id, e.g. bitcoin).
-- The sources' catalog tasks refresh it; ohlcv_ranges selects the active ones from it.
-- listing_date is the first trading day when the source tells it (Yahoo's firstTradeDate).
CREATE TABLE IF NOT EXISTS assets (
    source       text        NOT NULL,
    symbol       text        NOT NULL,
    name         text,
    asset_type   text,
    exchange     text,
    currency     text,
    listing_date date,
    active       boolean     NOT NULL DEFAULT true,
    updated_at   timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (source, symbol)
);

-- Source-neutral OHLCV candles (every source but Kite, whose kite_ohlcv_historic stays as it
-- is). candle_interval is named as the source names it (Binance 1d, 1h; Yahoo 1d, 1h; ...);
-- ts is the candle's start, UTC (day candles: the UTC midnight of the trading date). Prices
-- and volumes are stored as the source's text, exactly (numeric keeps every digit and its
-- scale: "67101.71000000" stays 67101.71000000).
CREATE TABLE IF NOT EXISTS ohlcv (
    source          text        NOT NULL,
    symbol          text        NOT NULL,
    candle_interval text        NOT NULL,
    ts              timestamptz NOT NULL,
    open            numeric     NOT NULL,
    high            numeric     NOT NULL,
    low             numeric     NOT NULL,
    close           numeric     NOT NULL,
    volume          numeric     NOT NULL,
    ingested_at     timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (source, symbol, candle_interval, ts)
);

-- ---------------------------------------------------------------------------------------
-- Run state (schema dagrun): what the runtime, the scheduler and the CLI read and write
-- ---------------------------------------------------------------------------------------

CREATE SCHEMA IF NOT EXISTS dagrun;

-- One row per DAG that ever ran: the pause flag (`dagrun pause`) and scheduler bookkeeping.
CREATE TABLE IF NOT EXISTS dagrun.dag (
    dag_id            text PRIMARY KEY,
    paused            boolean NOT NULL DEFAULT false,
    last_scheduled_at timestamptz,          -- logical date of the latest scheduled run
    updated_at        timestamptz NOT NULL DEFAULT now()
);

-- One row per DAG run: identity, parameters (conf), state, warnings, counters, timings,
-- and the heartbeat that tells a live run from one whose process died.
-- state: queued, running, success, partial, failed, cancelled.
CREATE TABLE IF NOT EXISTS dagrun.dag_run (
    run_id              text PRIMARY KEY,
    dag_id              text NOT NULL REFERENCES dagrun.dag (dag_id),
    run_type            text NOT NULL CHECK (run_type IN ('scheduled', 'manual', 'test', 'backfill')),
    logical_date        timestamptz NOT NULL,
    data_interval_start timestamptz,
    data_interval_end   timestamptz,
    conf                jsonb NOT NULL DEFAULT '{}',
    state               text NOT NULL DEFAULT 'queued',
    warnings            jsonb NOT NULL DEFAULT '[]',    -- array of strings
    counters            jsonb NOT NULL DEFAULT '{}',    -- object of numeric totals
    error               text,
    queued_at           timestamptz NOT NULL DEFAULT now(),
    started_at          timestamptz,
    ended_at            timestamptz,
    heartbeat_at        timestamptz,
    cancel_requested    boolean NOT NULL DEFAULT false,
    pid                 integer,
    hostname            text
);

-- Fencing: every process that takes a run's lock increments epoch and remembers it; its
-- heartbeat, end state and each item's commit require the row to still carry its epoch, so a
-- process whose run was taken over (it was stopped, or cut off from the database, past
-- heartbeat_timeout_sec) can write nothing more for it, even before it notices.
ALTER TABLE dagrun.dag_run ADD COLUMN IF NOT EXISTS epoch bigint NOT NULL DEFAULT 0;
-- A run parked because a window of a source's limits counted here (dagrun.source_window) is
-- used up is queued with the time that window reopens: the scheduler resumes it only then.
ALTER TABLE dagrun.dag_run ADD COLUMN IF NOT EXISTS resume_after timestamptz;
-- run_type 'backfill' (`dagrun backfill`) came later: a table made before it gets the wider check.
DO $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_constraint WHERE conrelid = 'dagrun.dag_run'::regclass
                   AND conname = 'dag_run_run_type_check'
                   AND pg_get_constraintdef(oid) LIKE '%backfill%') THEN
        ALTER TABLE dagrun.dag_run DROP CONSTRAINT IF EXISTS dag_run_run_type_check;
        ALTER TABLE dagrun.dag_run ADD CONSTRAINT dag_run_run_type_check
            CHECK (run_type IN ('scheduled', 'manual', 'test', 'backfill'));
    END IF;
END
$$;

-- At most one scheduled run per DAG and logical date, so two schedulers cannot both fire it;
-- also serves "latest scheduled run of a DAG".
CREATE UNIQUE INDEX IF NOT EXISTS dag_run_scheduled_uq
    ON dagrun.dag_run (dag_id, logical_date) WHERE run_type = 'scheduled';
-- `dagrun runs [DAG]`: newest first.
CREATE INDEX IF NOT EXISTS dag_run_dag_queued_idx ON dagrun.dag_run (dag_id, queued_at DESC);
-- Active and stale runs (state queued/running).
CREATE INDEX IF NOT EXISTS dag_run_state_idx ON dagrun.dag_run (state);

-- One row per task instance, or per item (map_index >= 0) of a mapped task: its state,
-- try number, timings, error and small JSON output. A lane item's row commits in the same
-- transaction as the item's data, which is what makes `dagrun resume` exact.
-- state: pending, running, success, skipped, failed, upstream_failed, cancelled.
-- The calendar windows of the sources' limits ("reset": "utc_day" / "utc_month"): what every
-- process has taken from each window, so that a restart, a second process or a second machine
-- neither resets nor doubles it. period_start: the window's start, UTC.
CREATE TABLE IF NOT EXISTS dagrun.source_window (
    source       text      NOT NULL,
    window_key   text      NOT NULL,
    period_start timestamp NOT NULL,
    used         bigint    NOT NULL,
    PRIMARY KEY (source, window_key, period_start)
);

CREATE TABLE IF NOT EXISTS dagrun.task_instance (
    run_id     text NOT NULL,
    task_id    text NOT NULL,
    map_index  integer NOT NULL DEFAULT -1,            -- -1: not mapped
    map_key    text,                                   -- display key of the item, e.g. NSE:INFY
    state      text NOT NULL,
    try_number integer NOT NULL DEFAULT 0,
    started_at timestamptz,
    ended_at   timestamptz,
    error      text,
    output     jsonb,
    checkpoint text,                                   -- how far a failed item committed
    PRIMARY KEY (run_id, task_id, map_index)
);
ALTER TABLE dagrun.task_instance ADD COLUMN IF NOT EXISTS checkpoint text;

-- run_id names a dagrun.dag_run row, but is not declared a foreign key: the check would take
-- a KEY SHARE lock on that one run row in every item's transaction, while the heartbeat
-- updates it, and measured 7 µs of the 20 µs an item may cost (make bench, engine). dagrun
-- writes the run row first; `dagrun db clean` deletes a run's task instances with its row.
ALTER TABLE dagrun.task_instance DROP CONSTRAINT IF EXISTS task_instance_run_id_fkey;

-- No index beyond the primary key: every question asked of this table is about one run,
-- which the key's run_id prefix finds, and each extra index costs every item's write.


-- Kept task logs (`dagrun logs`): the lines the runtime and the plugin logged for one task
-- instance or item (map_key NULL: not mapped), redacted, at most 64 KiB per instance (then
-- one "N lines dropped" line). Written in batches by a thread of their own, never on an
-- item's transaction. Kept as long as their run: deleting a run deletes its logs.
CREATE TABLE IF NOT EXISTS dagrun.task_log (
    id      bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    run_id  text NOT NULL REFERENCES dagrun.dag_run (run_id) ON DELETE CASCADE,
    task_id text NOT NULL,
    map_key text,
    ts      timestamptz NOT NULL,
    level   text NOT NULL,
    line    text NOT NULL
);
CREATE INDEX IF NOT EXISTS task_log_run_idx ON dagrun.task_log (run_id, task_id, map_key, id);
-- Live progress for `dagrun serve` (runtime/serve_sse.c): the run's own transactions NOTIFY,
-- so every server on this database hears of every run, whichever process or machine runs it.
-- dagrun_run (payload: the run id) when a run is created or its state, error, warnings or
-- counters are written; dagrun_progress (no payload) once per statement that writes
-- task-instance records (a batch of thousands is one notification; payloads repeated in one
-- transaction are folded into one by PostgreSQL). Only while a server listens: a NOTIFY
-- serializes the commits that send one, which nobody should pay for with no server running.
-- A server's listening connection is named 'dagrun serve' (application_name).
CREATE OR REPLACE FUNCTION dagrun.serve_listening() RETURNS boolean LANGUAGE sql STABLE AS $$
    SELECT EXISTS (SELECT 1 FROM pg_stat_get_activity(NULL) a
                   WHERE a.application_name = 'dagrun serve'
                   AND a.datid = (SELECT oid FROM pg_database WHERE datname = current_database()))
$$;
CREATE OR REPLACE FUNCTION dagrun.notify_run() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF dagrun.serve_listening() THEN
        PERFORM pg_notify('dagrun_run', NEW.run_id);
    END IF;
    RETURN NULL;
END
$$;
CREATE OR REPLACE FUNCTION dagrun.notify_progress() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF dagrun.serve_listening() THEN
        PERFORM pg_notify('dagrun_progress', '');
    END IF;
    RETURN NULL;
END
$$;
DO $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_trigger WHERE tgname = 'dag_run_notify'
                   AND tgrelid = 'dagrun.dag_run'::regclass) THEN
        CREATE TRIGGER dag_run_notify AFTER INSERT OR UPDATE OF state, error, warnings, counters
            ON dagrun.dag_run FOR EACH ROW EXECUTE FUNCTION dagrun.notify_run();
    END IF;
    IF NOT EXISTS (SELECT 1 FROM pg_trigger WHERE tgname = 'task_instance_notify'
                   AND tgrelid = 'dagrun.task_instance'::regclass) THEN
        CREATE TRIGGER task_instance_notify AFTER INSERT OR UPDATE ON dagrun.task_instance
            FOR EACH STATEMENT EXECUTE FUNCTION dagrun.notify_progress();
    END IF;
END
$$;

COMMIT;
