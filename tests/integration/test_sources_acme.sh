#!/usr/bin/env bash
# A fourth source needs no change under runtime/: a source block that exists only in this
# test's config (its own header secret and weight window) and a plugin built outside tasks/
# (tests/fixtures/acme/acme_prices.c) run through the shared ohlcv_ranges and upsert_ohlcv.
source "$(dirname "$0")/lib.sh"
export ACME_KEY=acme-secret-4242
LAST=$(date -u -d '2 days ago' +%F)
pf="$T_WORK/acme.port"
"$DR_BUILD/coingecko_sim" --port 0 --port-file "$pf" --demo-key "$ACME_KEY" \
    --last-day "$LAST" >"$T_WORK/acme.log" 2>&1 &
T_PIDS+=("$!")
for i in $(seq 1 100); do [ -s "$pf" ] && break; sleep 0.05; done
export ACME_URL="http://127.0.0.1:$(cat "$pf")"
mkdir -p "$T_WORK/plugins" "$T_WORK/dags"
ln -s "$DR_BUILD"/tasks/*.so "$DR_BUILD/tests/acme/acme_prices.so" "$T_WORK/plugins/"
cat >"$T_WORK/dags/acme_daily.yaml" <<'YAML'
dag_id: acme_daily
params:
  symbols: [bitcoin, ethereum]
  candle_interval: 1d
  bootstrap_date: 2000-01-01
  end_date: yesterday
tasks:
  ranges: { plugin: ohlcv_ranges, params: { source: acme } }
  fetch:  { plugin: acme_prices, map: ranges }
  upsert: { plugin: upsert_ohlcv, map: ranges, after: [fetch] }
YAML
CONFIG=$T_WORK/config.json
cat >"$CONFIG" <<JSON
{
  "dags_dir": "$T_WORK/dags",
  "plugin_dir": "$T_WORK/plugins",
  "log_format": "json",
  "sources": {
    "acme": { "base_url": "\${ACME_URL}", "headers": { "x-cg-demo-api-key": "\${ACME_KEY}" },
              "limits": [{ "weight": 10, "per": "1s" }, { "requests": 100, "per": "1d" }],
              "max_retries": 2, "retry_delay_ms": 50 }
  }
}
JSON
new_db acme
B2=$(date -u -d '300 days ago' +%F)
dagrun run acme_daily --conf "{\"bootstrap_date\": \"$B2\", \"end_date\": \"$LAST\"}" >"$T_WORK/out" 2>&1; rc=$?
expect_eq "a source defined only in this config runs: exit 0" "$rc" 0
expect_eq "its candles are stored under its name" "$(q "select count(distinct symbol) from ohlcv where source = 'acme'")" 2
expect_eq "one request per asset" "$(curl -sf "$ACME_URL/__sim/stats" | jq -r .chart_requests)" 2
check "its header secret never appears in the output" bash -c "! grep -q '$ACME_KEY' '$T_WORK/out'"
dagrun run acme_daily --conf "{\"bootstrap_date\": \"$B2\", \"end_date\": \"$LAST\"}" >"$T_WORK/out" 2>&1; rc=$?
expect_eq "again: exit 0" "$rc" 0
expect_eq "again: no request" "$(curl -sf "$ACME_URL/__sim/stats" | jq -r .chart_requests)" 2
check "runtime/ names no source" bash -c "! grep -rniE 'binance|yahoo|coingecko|kite|X-MBX|x-cg-' '$DR_TOP/runtime/'"
finish
