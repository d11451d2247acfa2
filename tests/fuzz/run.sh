#!/usr/bin/env bash
# Runs each libFuzzer target for a given time: tests/fuzz/run.sh SECONDS [TARGET...]
# (targets: fuzz_dag fuzz_config fuzz_cron fuzz_candles fuzz_candle_parsers fuzz_time fuzz_conninfo; default all that are built).
# Env: FUZZ_DIR (default build/fuzz: binaries, corpus/, artifacts/, logs/), DR_BUILD (the
# plugins' build dir, default build). Prints one line per target; exits 1 on any failure.
set -u

secs=${1:-600}
shift || true
fuzz_dir=${FUZZ_DIR:-build/fuzz}
export DR_BUILD=${DR_BUILD:-build}
seed_dir=tests/fuzz/corpus

if [ $# -eq 0 ]; then
    set -- fuzz_dag fuzz_config fuzz_cron fuzz_candles fuzz_candle_parsers fuzz_time fuzz_conninfo
fi

# Largest input per target.
max_len() {
    case $1 in
        fuzz_dag) echo 65536 ;;
        fuzz_config) echo 16384 ;;
        fuzz_cron) echo 4096 ;;
        fuzz_candles) echo 65536 ;;
        fuzz_candle_parsers) echo 65536 ;;
        fuzz_time) echo 256 ;;
        fuzz_conninfo) echo 2048 ;;
        *) echo 4096 ;;
    esac
}

mkdir -p "$fuzz_dir/artifacts" "$fuzz_dir/logs" "$fuzz_dir/corpus"
fail=0
printf '%-14s %12s  %s\n' target runs result
for t in "$@"; do
    bin=$fuzz_dir/$t
    name=${t#fuzz_}
    corpus=$fuzz_dir/corpus/$name
    log=$fuzz_dir/logs/$t.log
    if [ ! -x "$bin" ]; then
        printf '%-14s %12s  %s\n' "$t" - "FAILED: $bin not built"
        fail=1
        continue
    fi
    # The runs add to the copy, never to the seeds in the repository.
    mkdir -p "$corpus"
    if [ -d "$seed_dir/$name" ]; then
        cp -f "$seed_dir/$name"/* "$corpus"/ 2>/dev/null || true
    fi
    before=$(ls "$fuzz_dir/artifacts" | grep -c "^$t-")
    # The corpus is read (every seed, regressions included, runs first), then fuzzing goes on
    # for $secs seconds. A run over twice its time is hung: timeout kills it.
    timeout -k 10 $((secs * 2 + 120)) "$bin" \
        -max_total_time="$secs" -max_len="$(max_len "$t")" -timeout=10 -rss_limit_mb=2048 \
        -artifact_prefix="$fuzz_dir/artifacts/$t-" -print_final_stats=1 "$corpus" >"$log" 2>&1
    rc=$?
    runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -n 1)
    [ -n "$runs" ] || runs=$(grep -o '^#[0-9]*' "$log" | tail -n 1 | tr -d '#')
    [ -n "$runs" ] || runs=0
    after=$(ls "$fuzz_dir/artifacts" | grep -c "^$t-")
    if [ "$rc" -eq 0 ] && [ "$after" -eq "$before" ]; then
        result=ok
    else
        fail=1
        art=$(grep -o 'Test unit written to [^ ]*' "$log" | tail -n 1 | sed 's/Test unit written to //')
        kind=$(grep -o -m1 -E 'ERROR: (AddressSanitizer|LeakSanitizer|libFuzzer): [a-z-]+|runtime error: .*|SUMMARY: UndefinedBehaviorSanitizer: [a-z-]+|fuzz_[a-z]+: .*' "$log" | head -n 1)
        [ "$rc" -eq 124 ] && kind="hung (killed by timeout)"
        result="FAILED (exit $rc): ${kind:-see $log}${art:+ -> $art}"
    fi
    printf '%-14s %12s  %s\n' "$t" "$runs" "$result"
done
exit $fail
