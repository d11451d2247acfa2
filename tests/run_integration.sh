#!/usr/bin/env bash
# Runs every tests/integration/test_*.sh (or the ones named) against one sandbox PostgreSQL
# cluster, each under a timeout, and prints the totals as "N passed, M failed".
set -uo pipefail
cd "$(dirname "$0")/.."
export DR_BUILD=${DR_BUILD:-build}
export DR_TOP=$PWD
own_db=""
if [ -z "${DATABASE_URL:-}" ]; then
    own_db=$(mktemp -d /tmp/dagrun-it.XXXXXX)
    chmod 711 "$own_db"   # the server runs as postgres and must reach its folder
    DATABASE_URL=$(tests/pg_sandbox.sh start "$own_db/pg") || { echo "cannot start the sandbox database"; exit 1; }
    export DATABASE_URL
fi
export DR_ADMIN_URL=$DATABASE_URL
trap '[ -n "$own_db" ] && tests/pg_sandbox.sh stop "$own_db/pg" >/dev/null 2>&1; rm -rf "$own_db"' EXIT

tests=("$@")
[ ${#tests[@]} -gt 0 ] || tests=(tests/integration/test_*.sh)
passed=0 failed=0 broken=()
for t in "${tests[@]}"; do
    echo "== $t"
    log=$(mktemp)
    timeout 900 bash "$t" 2>&1 | tee "$log"
    rc=${PIPESTATUS[0]}
    line=$(grep -E '^[0-9]+ passed, [0-9]+ failed' "$log" | tail -n 1)
    rm -f "$log"
    if [ -z "$line" ]; then
        failed=$((failed + 1)); broken+=("$t (exit $rc, no totals)")
        continue
    fi
    p=${line%% passed*}; f=${line#*passed, }; f=${f%% failed*}
    passed=$((passed + p)); failed=$((failed + f))
    [ "$rc" = 0 ] && [ "$f" = 0 ] || broken+=("$t")
done
[ ${#broken[@]} -eq 0 ] || printf 'failing: %s\n' "${broken[@]}"
echo "integration: $passed passed, $failed failed"
[ "$failed" = 0 ]
