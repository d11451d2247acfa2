#!/usr/bin/env bash
# Hostile candle answers against the pipeline (kite_sim --hostile-candles): every answer
# newest-first, with a second copy of its newest candle and a candle dated 2099-01-01. Every
# candle is stored once, the far-future one never, and the next run is not frozen by it.
source "$(dirname "$0")/lib.sh"
CONFIG=$T_WORK/config.json
END=2024-06-28
BOOT=2023-01-02
N=10

historic() { dagrun run kite_historic --conf "{\"limit\": $N, \"bootstrap_date\": \"$BOOT\", \"end_date\": \"$1\"}"; }

new_db order
start_sim --instruments $N --rate 0 --hostile-candles
write_config "$CONFIG" 0
dagrun run kite_instruments >/dev/null 2>&1
sim_reset
historic "$END" >"$T_WORK/out" 2>&1; rc=$?
expect_eq "run on newest-first answers exits 0" "$rc" 0
requests=$(sim_stat .historical_requests)
expected_rows "$BOOT" "$END" >"$T_WORK/expected"
stored_rows >"$T_WORK/stored"
expect_eq "newest-first answers: every candle stored" "$(wc -l <"$T_WORK/stored")" "$(wc -l <"$T_WORK/expected")"
expect_eq "newest-first answers: every stored value is the simulator's (checksum)" \
    "$(md5sum <"$T_WORK/stored" | cut -c1-32)" "$(md5sum <"$T_WORK/expected" | cut -c1-32)"
expect_eq "nothing stored after the requested end" \
    "$(q "select count(*) from kite_ohlcv_historic where ts >= timestamptz '$END 00:00:00+05:30' + interval '1 day'")" 0
dropped=$(q "select coalesce((counters->>'dropped')::int, 0) from dagrun.dag_run where dag_id='kite_historic'")
expect_eq "the duplicate and the far-future candle of each answer are dropped and counted" "$dropped" $((2 * requests))
check "the warning names the far-future candle and the requested range" \
    grep -q "dropped candle 2099-01-01T00:00:00+0530: outside the requested $BOOT..$END" "$T_WORK/out"
check "the warning says which duplicate was kept" grep -q "duplicate timestamp: kept the first" "$T_WORK/out"

# the next run starts after the last real day, not after 2099
sim_reset
LATER=2024-07-05
historic "$LATER" >"$T_WORK/out" 2>&1; rc=$?
expect_eq "later run exits 0" "$rc" 0
expect_eq "later run makes one request per instrument" "$(sim_stat .historical_requests)" $N
expected_rows "$BOOT" "$LATER" >"$T_WORK/expected"
stored_rows >"$T_WORK/stored"
expect_eq "later run adds exactly the new days" \
    "$(md5sum <"$T_WORK/stored" | cut -c1-32)" "$(md5sum <"$T_WORK/expected" | cut -c1-32)"
stop_sim
finish
