#!/usr/bin/env bash
# `make demo-sources`: Binance, Yahoo Finance and CoinGecko end to end on a sandbox PostgreSQL
# and their simulators: each source's DAGs, an incremental second run, a few rows of ohlcv
# and assets, then stop what it started.
set -euo pipefail
cd "$(dirname "$0")/.."
B=${DR_BUILD:-build}
work=$(mktemp -d /tmp/dagrun-demo-sources.XXXXXX)
chmod 711 "$work"   # the sandbox server runs as postgres and must reach its folder
pids=()
own_db=""
cleanup() {
    local p
    for p in "${pids[@]}"; do kill "$p" 2>/dev/null; wait "$p" 2>/dev/null || true; done
    [ -n "$own_db" ] && tests/pg_sandbox.sh stop "$work/pg" >/dev/null 2>&1
    rm -rf "$work"
}
trap cleanup EXIT

step() { printf '\n\033[1m== %s\033[0m\n' "$*"; }
# start NAME ARGS...: a simulator on a free loopback port; prints its URL.
start() {
    local name=$1; shift
    "$B/${name}_sim" --port 0 --port-file "$work/$name.port" "$@" >"$work/$name.log" 2>&1 &
    pids+=($!)
    for _ in $(seq 1 100); do [ -s "$work/$name.port" ] && break; sleep 0.05; done
    echo "http://127.0.0.1:$(cat "$work/$name.port")"
}

if [ -z "${DATABASE_URL:-}" ]; then
    step "starting a sandbox PostgreSQL in $work/pg"
    DATABASE_URL=$(tests/pg_sandbox.sh start "$work/pg")
    own_db=1
    export DATABASE_URL
fi

YDAY=$(date -u -d yesterday +%F)
step "starting the simulators: Binance (6000 weight a minute), Yahoo, CoinGecko (demo key)"
BINANCE_URL=$(start binance --symbols 6 --last-day "$YDAY")
YAHOO_URL=$(start yahoo --last-day "$YDAY")
COINGECKO_URL=$(start coingecko --last-day "$YDAY" --demo-key demo-key-of-the-demo)
export BINANCE_URL YAHOO_URL COINGECKO_URL COINGECKO_DEMO_API_KEY=demo-key-of-the-demo
cat >"$work/config.json" <<JSON
{
  "dags_dir": "$PWD/dags",
  "plugin_dir": "$PWD/$B/tasks",
  "max_active_tasks": 8,
  "sources": {
    "binance": { "base_url": "\${BINANCE_URL}", "ban_status": 418,
                 "limits": [{ "weight": 6000, "per": "1m", "used_header": "X-MBX-USED-WEIGHT-1M" }] },
    "yahoo": { "base_url": "\${YAHOO_URL}", "limits": [{ "requests": 2000, "per": "1h" }] },
    "coingecko": { "base_url": "\${COINGECKO_URL}",
                   "headers": { "x-cg-demo-api-key": "\${COINGECKO_DEMO_API_KEY}" },
                   "limits": [{ "requests": 30, "per": "1m" }, { "requests": 10000, "reset": "utc_month" }] }
  }
}
JSON
dagrun() { "$B/dagrun" -c "$work/config.json" "$@"; }

step "dagrun initdb"
dagrun initdb --schema schema.sql
step "dagrun run binance_historic (day klines since 2017, every TRADING symbol)"
dagrun run binance_historic --conf "{\"bootstrap_date\": \"2017-01-01\", \"end_date\": \"$YDAY\"}"
step "dagrun run yahoo_historic (AAPL, WSU.DE, ^GSPC, EURUSD=X since 2020)"
dagrun run yahoo_historic --conf "{\"symbols\": [\"AAPL\", \"WSU.DE\", \"^GSPC\", \"EURUSD=X\"], \"bootstrap_date\": \"2020-01-01\", \"end_date\": \"$YDAY\"}"
step "dagrun run coingecko_assets (the top 5 coins) and coingecko_daily (the plan's last 365 days)"
dagrun run coingecko_assets --conf '{"top": 5}'
dagrun run coingecko_daily --conf "{\"end_date\": \"$YDAY\"}"
step "the same runs again: every asset is up to date, no request is sent"
dagrun run binance_historic --conf "{\"end_date\": \"$YDAY\"}"
dagrun run yahoo_historic --conf "{\"end_date\": \"$YDAY\"}"
dagrun run coingecko_daily --conf "{\"end_date\": \"$YDAY\"}"
step "what is stored"
psql -X "$DATABASE_URL" -c "select source, candle_interval, count(*) as candles, count(distinct symbol) as assets,
                                   min(ts)::date as first, max(ts)::date as last
                            from ohlcv group by 1, 2 order by 1, 2"
psql -X "$DATABASE_URL" -c "select distinct on (source) source, symbol, ts, open, high, low, close, volume
                            from ohlcv order by source, ts desc"
psql -X "$DATABASE_URL" -c "select source, symbol, name, asset_type, exchange, currency, listing_date
                            from assets where active order by source, symbol limit 12"
