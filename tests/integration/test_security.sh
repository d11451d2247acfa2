#!/usr/bin/env bash
# Security: hostile instrument names flow through CSV, filters and upserts literally; no
# statement is built by pasting values into SQL (static check); oversized, deep, aliased or
# invalid-UTF-8 DAG and config files and bad plugin names are refused with file:line:col;
# the API key, access token and database password never appear in anything dagrun prints
# (text and JSON logs, success and error paths), stores in its schema or writes to JUnit;
# TLS verification is always on and a self-signed server is refused.
source "$(dirname "$0")/lib.sh"
CONFIG=$T_WORK/config.json
BOOT=2023-01-01
END=2024-06-28

# ---- hostile names: the CSV's values stored literally, filters and upserts take them as data
new_db hostile
start_sim --instruments 16 --rate 0 --hostile-names
write_config "$CONFIG" 0 3 4
dagrun run kite_instruments >"$T_WORK/load.out" 2>&1; rc=$?
expect_eq "hostile names: load exits 0" "$rc" 0
curl -sf -H "Authorization: token $KITE_API_KEY:$KITE_ACCESS_TOKEN" "$SIM_URL/instruments" >"$T_WORK/inst.csv"
# psql's own RFC 4180 reader gives the values the CSV holds; they must equal the stored ones
psql -qAtX "$DATABASE_URL" -v ON_ERROR_STOP=1 >/dev/null <<SQL
CREATE TABLE csv_want (instrument_token bigint, exchange_token bigint, tradingsymbol text, name text,
  last_price numeric, expiry date, strike numeric, tick_size numeric, lot_size int,
  instrument_type text, segment text, exchange text);
\copy csv_want FROM '$T_WORK/inst.csv' WITH (FORMAT csv, HEADER true)
SQL
expect_eq "hostile names: 16 rows in the dump" "$(q 'select count(*) from csv_want')" 16
check "hostile names: the dump really is hostile (quotes, newline, SQL, unicode)" test \
    "$(q "select count(*) from csv_want where tradingsymbol ~ '[\"'',\\\\]' or name ~ E'[\\n\"'';]' or name ~ '[^[:ascii:]]' or name like '%DROP TABLE%'")" -ge 5
expect_eq "hostile names: every value stored literally" "$(q "select count(*) from (
    select instrument_token, exchange_token, tradingsymbol, name, last_price, expiry, strike, tick_size, lot_size, instrument_type, segment, exchange from csv_want
    except select instrument_token, exchange_token, tradingsymbol, name, last_price, expiry, strike, tick_size, lot_size, instrument_type, segment, exchange from instruments) d")" 0
expect_eq "hostile names: nothing else stored" "$(q 'select count(*) from instruments')" 16
# the symbols filter with every hostile symbol, as INFY and as NSE:INFY
q "select json_build_object('symbols', (select json_agg(case when instrument_token % 2 = 0 then tradingsymbol else exchange || ':' || tradingsymbol end) from instruments), 'limit', 0,
   'bootstrap_date', '$BOOT', 'end_date', '$END')" >"$T_WORK/conf.json"
dagrun run kite_historic --conf-file "$T_WORK/conf.json" >"$T_WORK/hist.out" 2>&1; rc=$?
expect_eq "hostile names: kite_historic with the hostile symbols filter exits 0" "$rc" 0
expect_eq "hostile names: the filter matched every hostile symbol literally" \
    "$(q "select count(*) from dagrun.task_instance where task_id='upsert' and state='success'")" 16
expect_eq "hostile names: map keys are the literal EXCHANGE:SYMBOL" \
    "$(q "select count(*) from dagrun.task_instance t join instruments i on t.map_key = i.exchange || ':' || i.tradingsymbol where t.task_id='fetch'")" 16
expect_eq "hostile names: stored candles carry the literal symbol" \
    "$(q "select count(*) from kite_ohlcv_historic k join instruments i using (instrument_token) where k.tradingsymbol is distinct from i.tradingsymbol")" 0
expected_rows "$BOOT" "$END" >"$T_WORK/expected"; stored_rows >"$T_WORK/stored"
check "hostile names: every candle stored as served" cmp -s "$T_WORK/stored" "$T_WORK/expected"
# a symbol that matches nothing (SQL in it) selects nothing and breaks nothing
cat >"$T_WORK/conf2.json" <<JSON
{"symbols": ["x'); DROP TABLE instruments; --", "\\\\", "a,b", "\"}"], "bootstrap_date": "$BOOT", "end_date": "$END"}
JSON
dagrun run kite_historic --conf-file "$T_WORK/conf2.json" >"$T_WORK/none.out" 2>&1; rc=$?
expect_eq "hostile names: symbols that match nothing select nothing (exit 0)" "$rc" 0
expect_eq "hostile names: the tables are all still there" \
    "$(q "select count(*) from pg_tables where tablename in ('instruments', 'kite_ohlcv_historic')")" 2
expect_eq "hostile names: no instrument lost" "$(q 'select count(*) from instruments')" 16
stop_sim

# ---- no statement pastes a value into SQL: every printf-family call in runtime/ and tasks/
# whose format is SQL and takes a string (%s, %c) must be in this reviewed list. The rule:
# values go in as parameters ($1, PQexecParams) or through COPY; only identifiers quoted with
# PQescapeIdentifier, compile-time constants and integers may be formatted into a statement.
SQL_ALLOW='
# savepoint names: "dr_lane_%d", an integer the runtime makes
runtime/unit.c|SAVEPOINT %s
runtime/unit.c|ROLLBACK TO SAVEPOINT %s
runtime/unit.c|RELEASE SAVEPOINT %s
# the column list is a constant; the target table is PQescapeIdentifier of a checked name
tasks/upsert_candles.c|COPY pg_temp.dr_upsert_candles (%s) FROM
tasks/upsert_candles.c|WITH m AS (INSERT INTO %s AS t (%s) SELE
tasks/upsert_candles.c|COPY %.120s (%s) FROM STDIN (FORMAT bina'
export SQL_ALLOW
cat >"$T_WORK/check_sql.pl" <<'PERL'
# Prints "file:line: ..." for each printf-family call whose format is SQL with a %s/%c
# conversion and that is not in $SQL_ALLOW ("file|first 40 characters of the format").
use strict; use warnings;
my %allow = map { $_ => 1 } grep { /\S/ && !/^#/ } split /\n/, ($ENV{SQL_ALLOW} // '');
my $sql = qr/\b(SELECT\b|INSERT\s+INTO|UPDATE\s+\S+\s+SET|DELETE\s+FROM|COPY\s+.*\b(FROM\s+STDIN|TO\s+STDOUT)|SAVEPOINT\b|CREATE\s+(TEMP\s+|TEMPORARY\s+|UNIQUE\s+)?(TABLE|INDEX|SCHEMA)|DROP\s+(TABLE|SCHEMA)|TRUNCATE\b|LOCK\s+TABLE|ALTER\s+TABLE|WHERE\s+\w+\s*(=|IN\b|LIKE)|\bSET\s+(LOCAL\s+)?\w+\s*(=|TO)\s)/;
my $bad = 0;
for my $f (@ARGV) {
    open my $fh, '<', $f or die "$f: $!";
    my $src = do { local $/; <$fh> };
    while ($src =~ /\b(v?sn?printf|v?asprintf)\s*\(/g) {
        my $start = pos($src);
        my $line = 1 + (substr($src, 0, $start) =~ tr/\n//);
        my ($depth, $i, $lits) = (1, $start, '');
        while ($i < length($src) && $depth > 0) {
            my $ch = substr($src, $i, 1);
            if ($ch eq '"') {
                my $j = $i + 1;
                while ($j < length($src) && substr($src, $j, 1) ne '"') { $j += substr($src, $j, 1) eq '\\' ? 2 : 1; }
                $lits .= substr($src, $i + 1, $j - $i - 1);
                $i = $j + 1; next;
            }
            if ($ch eq "'") { $i += substr($src, $i + 1, 1) eq '\\' ? 4 : 3; next; }
            $depth++ if $ch eq '(';
            $depth-- if $ch eq ')';
            $i++;
        }
        next unless $lits =~ $sql && $lits =~ /%[-+ #0-9.*]*[sc]/;
        (my $fmt = $lits) =~ s/\s+/ /g;
        next if $allow{"$f|" . substr($fmt, 0, 40)};
        print "$f:$line: SQL built with a pasted string: \"", substr($fmt, 0, 100), "\"\n";
        $bad++;
    }
}
exit($bad ? 1 : 0);
PERL
(cd "$DR_TOP" && perl "$T_WORK/check_sql.pl" runtime/*.c tasks/*.c) >"$T_WORK/sql.out" 2>&1; rc=$?
expect_eq "static check: no SQL built from pasted strings in runtime/ and tasks/" "$rc" 0
[ "$rc" = 0 ] || cat "$T_WORK/sql.out"
# the checker itself catches the pattern it is for
mkdir -p "$T_WORK/planted"
cat >"$T_WORK/planted/bad.c" <<'C'
void f(PGconn *db, const char *sym) {
    char sql[256];
    snprintf(sql, sizeof sql,
             "SELECT instrument_token FROM instruments WHERE tradingsymbol = '%s'", sym);
    PQexec(db, sql);
}
C
check "static check: a planted snprintf-built query is caught" bash -c "! perl '$T_WORK/check_sql.pl' '$T_WORK/planted/bad.c' >/dev/null"
check "static check: the allowed target table is quoted with PQescapeIdentifier" \
    grep -q 'PQescapeIdentifier(ch.db, table' "$DR_TOP/tasks/upsert_candles.c"

# ---- hostile DAG and config files: refused with exit 2 and file:line:col, nothing run
new_db files
SIM_URL=http://127.0.0.1:9 write_config "$CONFIG"
export SIM_URL=http://127.0.0.1:9
refused() {   # refused NAME FILE PATTERN CMD...
    local name=$1 file=$2 pat=$3; shift 3
    local out rc
    out=$(timeout 30 "$@" 2>&1); rc=$?
    if [ $rc = 2 ] && grep -qE "^$file:$pat" <<<"$out"; then ok "$name refused with exit 2 at file:line:col"
    else not_ok "$name: exit $rc, output: $(head -c 300 <<<"$out")"; fi
}
{ printf '{\n  "dags": {\n'; for i in $(seq 1 12000); do printf '    "d%d": {"params": {"x": "%0100d"}},\n' "$i" 0; done; printf '    "last": {}\n  }\n}\n'; } >"$T_WORK/huge.json"
refused "config over 1 MiB" "$T_WORK/huge.json" '1:1: .*1 MiB' "$DR_BUILD/dagrun" -c "$T_WORK/huge.json" list
{ printf '{"dags": '; for i in $(seq 1 5000); do printf '['; done; for i in $(seq 1 5000); do printf ']'; done; printf '}\n'; } >"$T_WORK/deep.json"
refused "config nested 5000 deep" "$T_WORK/deep.json" '1:[0-9]+: .*depth' "$DR_BUILD/dagrun" -c "$T_WORK/deep.json" list
printf '{\n  "log_format": "json",\n  "dags_dir": "bad\xff\xfe"\n}\n' >"$T_WORK/utf8.json"
refused "config with invalid UTF-8" "$T_WORK/utf8.json" '3:[0-9]+: .*(decode|UTF)' "$DR_BUILD/dagrun" -c "$T_WORK/utf8.json" list
printf '{\n  "log_format": "json",\n  "log_format": "text"\n}\n' >"$T_WORK/dup.json"
refused "config with a duplicate key" "$T_WORK/dup.json" '3:[0-9]+: .*duplicate' "$DR_BUILD/dagrun" -c "$T_WORK/dup.json" list
mkfifo "$T_WORK/fifo.json" "$T_WORK/fifo.yaml"
timeout 10 "$DR_BUILD/dagrun" -c "$T_WORK/fifo.json" list >/dev/null 2>&1; rc=$?
expect_eq "a FIFO as config is refused at once (exit 2, no hang)" "$rc" 2
timeout 10 "$DR_BUILD/dagrun" -c "$CONFIG" validate "$T_WORK/fifo.yaml" >/dev/null 2>&1; rc=$?
expect_eq "a FIFO as DAG file is refused at once (exit 2, no hang)" "$rc" 2
{ printf 'dag_id: huge\ntasks:\n  a: { plugin: noop }\nparams:\n'; for i in $(seq 1 40000); do printf '  p%d: "%040d"\n' "$i" 0; done; } >"$T_WORK/huge.yaml"
refused "DAG over 1 MiB" "$T_WORK/huge.yaml" '1:1: .*1 MiB' "$DR_BUILD/dagrun" -c "$CONFIG" validate "$T_WORK/huge.yaml"
printf 'dag_id: deep\ntasks:\n  a: { plugin: noop, params: { x: %s%s } }\n' "$(printf '[%.0s' $(seq 1 200))" "$(printf ']%.0s' $(seq 1 200))" >"$T_WORK/deep.yaml"
refused "DAG nested 200 deep" "$T_WORK/deep.yaml" '3:[0-9]+: nesting deeper' "$DR_BUILD/dagrun" -c "$CONFIG" validate "$T_WORK/deep.yaml"
printf 'dag_id: &a x\ntasks:\n  a: { plugin: noop }\n' >"$T_WORK/anchor.yaml"
refused "DAG with an anchor" "$T_WORK/anchor.yaml" '1:[0-9]+: aliases and anchors' "$DR_BUILD/dagrun" -c "$CONFIG" validate "$T_WORK/anchor.yaml"
printf 'dag_id: x\nd: &a [1]\ntasks:\n  a: { plugin: noop, params: *a }\n' >"$T_WORK/alias.yaml"
refused "DAG with an alias" "$T_WORK/alias.yaml" '2:[0-9]+: aliases and anchors' "$DR_BUILD/dagrun" -c "$CONFIG" validate "$T_WORK/alias.yaml"
# the billion-laughs shape: refused at its first anchor, before any expansion
printf 'a: &a ["x","x","x","x","x","x","x","x","x"]\nb: &b [*a,*a,*a,*a,*a,*a,*a,*a,*a]\nc: &c [*b,*b,*b,*b,*b,*b,*b,*b,*b]\n' >"$T_WORK/laughs.yaml"
refused "DAG of nested aliases (billion laughs)" "$T_WORK/laughs.yaml" '1:[0-9]+: aliases and anchors' "$DR_BUILD/dagrun" -c "$CONFIG" validate "$T_WORK/laughs.yaml"
printf 'dag_id: x\xc3\x28\ntasks:\n  a: { plugin: noop }\n' >"$T_WORK/utf8.yaml"
refused "DAG with invalid UTF-8" "$T_WORK/utf8.yaml" '1:[0-9]+: ' "$DR_BUILD/dagrun" -c "$CONFIG" validate "$T_WORK/utf8.yaml"
for p in '../tasks/noop' 'a/b' '..' '/usr/lib/x86_64-linux-gnu/libc.so.6' 'noop/../noop'; do
    printf 'dag_id: x\ntasks:\n  a: { plugin: "%s" }\n' "$p" >"$T_WORK/plugin.yaml"
    refused "plugin name \"$p\"" "$T_WORK/plugin.yaml" '3:[0-9]+: bad plugin name' "$DR_BUILD/dagrun" -c "$CONFIG" validate "$T_WORK/plugin.yaml"
done
expect_eq "nothing ran for any refused file" "$(q 'select count(*) from dagrun.dag_run')" 0

# ---- secrets: a known API key, access token and database password; every byte dagrun
# prints (text and JSON logs, debug level, success and error paths), stores in its schema
# or writes to JUnit is searched for them
AK=ak_Zq81mX0vYt AT=at_Kp5rW2cN9sLd WRONG=wrongtok_Aa77Ue DBPW=dbpw_Hj3Ty6Qe CS=cs_Q8wErT5yUi
export KITE_API_KEY=$AK KITE_ACCESS_TOKEN=$AT DR_CUSTOM_SECRET=$CS
S=$T_WORK/secrets
mkdir -p "$S" "$T_WORK/dags"
sed -e 's/retry_delay: 2s/retry_delay: 100ms/' -e 's/max_retry_delay: 5m/max_retry_delay: 1s/' \
    "$DR_TOP/dags/kite_historic.yaml" >"$T_WORK/dags/kite_historic.yaml"
cp "$DR_TOP/dags/kite_instruments.yaml" "$DR_TOP/dags/ci/kite_smoke.yaml" "$T_WORK/dags/"
start_sim --instruments 8 --rate 0 --api-key "$AK" --access-token "$AT"
new_db secrets
DATABASE_URL="$DATABASE_URL&password=$DBPW"     # trust auth: never used, but dagrun holds it
write_config "$CONFIG.in" 0 2 4
# a custom header whose value comes from the environment is a secret like the credentials
jq --arg d "$T_WORK/dags" '.dags_dir = $d | .sources.kite.retry_delay_ms = 10
    | .sources.kite.headers["X-Custom-Secret"] = "key=${DR_CUSTOM_SECRET}"' "$CONFIG.in" >"$CONFIG"
jq '.log_level = "debug"' "$CONFIG" >"$T_WORK/debug.json"
HCONF="{\"limit\": 8, \"bootstrap_date\": \"$BOOT\", \"end_date\": \"$END\"}"
n=0
capture() {   # capture NAME CMD...: stdout and stderr of one command, kept for the search
    n=$((n + 1))
    local name=$1; shift
    "$@" >"$S/$n.$name.out" 2>&1
}
fault() { curl -sf "$SIM_URL/__sim/config?$1" >/dev/null; }
capture smoke_text "$DR_BUILD/dagrun" -c "$CONFIG" --log-format text test kite_smoke --junit "$S/smoke_text.xml"
expect_eq "secrets: kite_smoke (text log) passes with the right credentials" "$(q "select count(*) from dagrun.dag_run where state='success'")" 1
q "truncate kite_ohlcv_historic" >/dev/null
capture smoke_json "$DR_BUILD/dagrun" -c "$T_WORK/debug.json" --log-format json test kite_smoke --junit "$S/smoke_json.xml"
q "truncate kite_ohlcv_historic" >/dev/null
fault "fault_5xx=1"
capture storm_text "$DR_BUILD/dagrun" -c "$T_WORK/debug.json" --log-format text run kite_historic --conf "$HCONF"
capture storm_json "$DR_BUILD/dagrun" -c "$T_WORK/debug.json" --log-format json run kite_historic --conf "$HCONF"
capture storm_junit "$DR_BUILD/dagrun" -c "$CONFIG" test kite_smoke --junit "$S/storm.xml"
fault "fault_5xx=0&fault_truncate=0.5&fault_wrong_type=0.3"
capture body_faults "$DR_BUILD/dagrun" -c "$T_WORK/debug.json" --log-format json run kite_historic --conf "$HCONF"
fault "fault_truncate=0&fault_wrong_type=0"
q "truncate kite_ohlcv_historic" >/dev/null
KITE_ACCESS_TOKEN=$WRONG capture wrong_token_text "$DR_BUILD/dagrun" -c "$T_WORK/debug.json" --log-format text run kite_historic --conf "$HCONF"
KITE_ACCESS_TOKEN=$WRONG capture wrong_token_json "$DR_BUILD/dagrun" -c "$CONFIG" --log-format json test kite_smoke --junit "$S/wrong.xml"
KITE_API_KEY=$WRONG capture wrong_key "$DR_BUILD/dagrun" -c "$CONFIG" run kite_instruments
DATABASE_URL="postgresql://dagrun:$DBPW@127.0.0.1:1/dagrun" capture no_db "$DR_BUILD/dagrun" -c "$CONFIG" run kite_instruments
capture runs "$DR_BUILD/dagrun" -c "$CONFIG" runs
capture runs_json "$DR_BUILD/dagrun" -c "$CONFIG" runs --json
for run in $(q "select run_id from dagrun.dag_run"); do
    capture status "$DR_BUILD/dagrun" -c "$CONFIG" status "$run"
    capture status_json "$DR_BUILD/dagrun" -c "$CONFIG" status "$run" --json
done
for t in $(q "select tablename from pg_tables where schemaname = 'dagrun' order by 1"); do
    q "copy dagrun.$t to stdout" >"$S/table.$t.txt"
done
pg_dump --schema=dagrun "$DATABASE_URL" >"$S/pg_dump.sql" 2>/dev/null || true
expect_eq "secrets: runs were recorded (success, failed by 5xx and by a wrong token)" \
    "$(q "select count(distinct state) >= 2 and count(*) >= 6 from dagrun.dag_run")" t
check "secrets: the failing requests are logged with their URL" \
    grep -qE 'GET http://127\.0\.0\.1:[0-9]+/instruments/historical/[0-9]+/day\?from=[^ ]*: HTTP 50[0-4]' "$S"/*.storm_json.out
check "secrets: the JUnit report of the failing run holds the failures" grep -q '<failure' "$S/storm.xml"
check "secrets: the wrong token run names the credential variables" grep -q 'KITE_ACCESS_TOKEN' "$S"/*.wrong_token_text.out
echo "# searched $(cat "$S"/* | wc -c) bytes in $(ls "$S" | wc -l) files"
for secret in "$AK" "$AT" "$WRONG" "$DBPW" "$CS"; do
    hits=$(grep -rlF -- "$secret" "$S" | xargs -r -n1 basename | paste -sd' ')
    expect_eq "secrets: $secret appears nowhere" "$hits" ""
done
expect_eq "secrets: no Authorization header printed" "$(grep -rliE 'authorization: *token' "$S" | wc -l)" 0
expect_eq "secrets: no custom secret header printed" "$(grep -rliE 'x-custom-secret: *key=' "$S" | wc -l)" 0
stop_sim

# ---- TLS: peer and host verification always on; a self-signed server is refused
export KITE_API_KEY=sim_key KITE_ACCESS_TOKEN=sim_token
check "TLS: http.c sets CURLOPT_SSL_VERIFYPEER to 1" grep -q 'CURLOPT_SSL_VERIFYPEER, 1L' "$DR_TOP/runtime/http.c"
check "TLS: http.c sets CURLOPT_SSL_VERIFYHOST to 2" grep -q 'CURLOPT_SSL_VERIFYHOST, 2L' "$DR_TOP/runtime/http.c"
expect_eq "TLS: nothing else touches verification (no 0, no CAINFO/PINNED override)" \
    "$(grep -rnE 'CURLOPT_(SSL_VERIFY(PEER|HOST|STATUS)|PROXY_SSL_VERIFY|CAINFO|CAPATH|SSL_OPTIONS)' "$DR_TOP/runtime" "$DR_TOP/tasks" | grep -vcE 'CURLOPT_SSL_VERIFYPEER, 1L|CURLOPT_SSL_VERIFYHOST, 2L')" 0
for key in insecure verify ssl_verify tls_verify verify_peer ca_file; do
    jq --arg k "$key" '.sources.kite[$k] = false' "$CONFIG" >"$T_WORK/tlskey.json"
    "$DR_BUILD/dagrun" -c "$T_WORK/tlskey.json" list >"$T_WORK/tlskey.out" 2>&1; rc=$?
    if [ $rc = 2 ] && grep -q "sources.kite.$key: unknown key" "$T_WORK/tlskey.out"; then ok "TLS: config key $key is refused"
    else not_ok "TLS: config key $key: exit $rc: $(cat "$T_WORK/tlskey.out")"; fi
done
if openssl req -x509 -newkey rsa:2048 -nodes -keyout "$T_WORK/key.pem" -out "$T_WORK/cert.pem" -days 1 \
        -subj /CN=127.0.0.1 >/dev/null 2>&1; then
    for try in 1 2 3 4 5; do
        port=$((20000 + RANDOM % 20000))
        openssl s_server -accept "127.0.0.1:$port" -cert "$T_WORK/cert.pem" -key "$T_WORK/key.pem" -www -quiet >/dev/null 2>&1 &
        tls_pid=$!
        T_PIDS+=("$tls_pid")
        sleep 0.5
        kill -0 $tls_pid 2>/dev/null && break
    done
    cat >"$T_WORK/dags/tls_probe.yaml" <<'YAML'
dag_id: tls_probe
tasks:
  load: { plugin: load_instruments, retries: 0 }
YAML
    jq --arg u "https://127.0.0.1:$port" '.sources.kite.base_url = $u' "$CONFIG" >"$T_WORK/tls.json"
    out=$(timeout 60 "$DR_BUILD/dagrun" -c "$T_WORK/tls.json" --log-format text run tls_probe 2>&1); rc=$?
    expect_eq "TLS: a self-signed server is refused (exit 1)" "$rc" 1
    check "TLS: the error names the certificate problem" grep -qi 'certificate' <<<"$out"
    check "TLS: the certificate error is stored on the task" \
        test "$(q "select count(*) from dagrun.task_instance t join dagrun.dag_run r using (run_id) where r.dag_id = 'tls_probe' and t.error ilike '%certificate%'")" = 1
    kill "$tls_pid" 2>/dev/null
else
    not_ok "TLS: openssl could not make a self-signed certificate"
fi
# ---- a database URL's password is never echoed, whatever fails to parse (issue 12.7)
for url in 'postgresql://alice:s3cr3t@[::1/db' 'postgresql://alice:s3/cr3t@host/db' \
           'postgresql://alice:s3cr3t@/db?host=/nonexistent_dr&port=s3cr3t' \
           'host=/nonexistent_dr password=s3cr3t port=s3cr3t'; do
    out=$(DATABASE_URL=$url timeout 30 "$DR_BUILD/dagrun" -c "$CONFIG" runs 2>&1); rc=$?
    if [ $rc != 0 ] && [ -n "$out" ] && ! grep -qE 's3cr3t|cr3t|port s3|"s3"' <<<"$out"; then
        ok "db url: $url is refused without its password"
    else not_ok "db url: $url: exit $rc: $out"; fi
done

# ---- credentials are checked before the first request (issue 14.3)
runs_before=$(q "select count(*) from dagrun.dag_run")
out=$(env -u KITE_ACCESS_TOKEN timeout 60 "$DR_BUILD/dagrun" -c "$CONFIG" run kite_instruments 2>&1); rc=$?
expect_eq "credentials: an unset KITE_ACCESS_TOKEN exits 2" "$rc" 2
check "credentials: the message names the variable and the config key" \
    grep -qF 'source kite: KITE_ACCESS_TOKEN is not set (named in sources.kite.headers)' <<<"$out"
out=$(KITE_API_KEY= KITE_ACCESS_TOKEN= timeout 60 "$DR_BUILD/dagrun" -c "$CONFIG" run kite_instruments 2>&1); rc=$?
expect_eq "credentials: two empty variables exit 2" "$rc" 2
check "credentials: both variables are named" grep -qF 'KITE_API_KEY and KITE_ACCESS_TOKEN are not set' <<<"$out"
# the check follows the plugin's source_param: a task reading another source needs its variables
jq '.sources.other = (.sources.kite | .headers = {"Authorization": "token ${DR_OTHER_TOKEN}"})' \
    "$CONFIG" >"$T_WORK/other.json"
cat >"$T_WORK/dags/other_source.yaml" <<'YAML'
dag_id: other_source
tasks:
  load: { plugin: load_instruments, retries: 3, params: { source: other } }
YAML
out=$(env -u DR_OTHER_TOKEN timeout 60 "$DR_BUILD/dagrun" -c "$T_WORK/other.json" run other_source 2>&1); rc=$?
expect_eq "credentials: a task's source param is followed (exit 2)" "$rc" 2
check "credentials: the other source's variable is named" \
    grep -qF 'source other: DR_OTHER_TOKEN is not set (named in sources.other.headers)' <<<"$out"
sed -i 's/source: other/source: nowhere/' "$T_WORK/dags/other_source.yaml"
out=$(timeout 60 "$DR_BUILD/dagrun" -c "$T_WORK/other.json" run other_source 2>&1); rc=$?
expect_eq "credentials: a source missing from config.json exits 2" "$rc" 2
check "credentials: the missing source is named" grep -qF 'source nowhere is not in config.json' <<<"$out"
rm -f "$T_WORK/dags/other_source.yaml"
expect_eq "credentials: no run was recorded for them" "$(q "select count(*) from dagrun.dag_run")" "$runs_before"
# a run the scheduler fires ends failed with the reason (not queued, retried at every tick)
mkdir -p "$T_WORK/sched_dags"
cat >"$T_WORK/sched_dags/sched_instruments.yaml" <<YAML
dag_id: sched_instruments
schedule: "@daily"
start_date: $(date -u -d '3 days ago' +%Y-%m-%d)
catchup: false
tasks:
  load: { plugin: load_instruments }
YAML
jq --arg d "$T_WORK/sched_dags" '.dags_dir = $d' "$CONFIG" >"$T_WORK/sched.json"
env -u KITE_ACCESS_TOKEN timeout 120 "$DR_BUILD/dagrun" -c "$T_WORK/sched.json" scheduler --once \
    >"$T_WORK/sched_cred.out" 2>&1
expect_eq "credentials: the scheduled run ends failed, naming the variable" \
    "$(q "select state || ': ' || (error like '%KITE_ACCESS_TOKEN is not set (named in sources.kite.headers)%') from dagrun.dag_run where dag_id = 'sched_instruments'")" "failed: true"
[ -n "${DR_KEEP:-}" ] && cp -r "$S" "$DR_KEEP"
finish
