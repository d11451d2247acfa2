#!/usr/bin/env bash
# make install into a temporary prefix, moved elsewhere afterwards (the install is
# relocatable): the installed binary finds its plugins and schema beside itself and runs
# validate, initdb and a run from another folder, with nothing pointing at the build tree.
# Also: a missing config is said, the man page and the bash completion are usable.
source "$(dirname "$0")/lib.sh"
new_db ops_install
q "drop schema dagrun cascade" >/dev/null 2>&1
unset DAGRUN_PLUGIN_DIR
out=$(make -C "$DR_TOP" --no-print-directory B="$DR_BUILD" install PREFIX="$T_WORK/p1" 2>&1); rc=$?
expect_eq "make install exits 0" "$rc" 0
mv "$T_WORK/p1" "$T_WORK/moved"
P=$T_WORK/moved
for f in bin/dagrun lib/dagrun/noop.so share/dagrun/schema.sql share/man/man1/dagrun.1 \
         share/bash-completion/completions/dagrun share/dagrun/systemd/dagrun-scheduler.service \
         include/dagrun/task.h; do
    check "installed $f" test -s "$P/$f"
done
check "the systemd unit names the installed binary" \
    grep -q "^ExecStart=$T_WORK/p1/bin/dagrun .* scheduler$" "$P/share/dagrun/systemd/dagrun-scheduler.service"

mkdir -p "$T_WORK/site/dags"
cat >"$T_WORK/site/dags/hello.yaml" <<'YAML'
dag_id: hello
schedule: null
tasks:
  items: { plugin: emit_list, params: { n: 3 } }
  each:  { plugin: noop, map: items }
YAML
echo '{ "dags_dir": "dags", "log_format": "text" }' >"$T_WORK/site/config.json"
cd "$T_WORK/site" || exit 1
d() { "$P/bin/dagrun" "$@"; }
out=$(d validate 2>&1); rc=$?
expect_eq "installed dagrun validates from another folder" "$rc" 0
out=$(d initdb 2>&1); rc=$?
expect_eq "installed dagrun initdb finds its schema" "$rc" 0
check "initdb used the installed schema" grep -q "schema applied from $P/bin/../share/dagrun/schema.sql" <<<"$out"
out=$(d run hello 2>&1); rc=$?
expect_eq "installed dagrun runs a DAG" "$rc" 0
expect_eq "the run is recorded" "$(q "select state from dagrun.dag_run where dag_id='hello'")" success

# a missing config: named, exit 2; none found: said on stderr
out=$(d -c "$T_WORK/none.json" list 2>&1); rc=$?
expect_eq "a missing -c config exits 2" "$rc" 2
check "a missing -c config is named" grep -q "config file $T_WORK/none.json: No such file" <<<"$out"
out=$(DAGRUN_CONFIG="$T_WORK/gone.json" d list 2>&1); rc=$?
expect_eq "a missing \$DAGRUN_CONFIG exits 2" "$rc" 2
cd "$T_WORK" || exit 1
out=$(HOME=$T_WORK XDG_CONFIG_HOME= d validate "$T_WORK/site/dags/hello.yaml" 2>&1); rc=$?
check "no config found is said" grep -q "no config.json found" <<<"$out"
expect_eq "defaults still validate a file" "$rc" 0
mkdir -p "$T_WORK/xdg/dagrun" && cp "$T_WORK/site/config.json" "$T_WORK/xdg/dagrun/"
sed -i "s#\"dags\"#\"$T_WORK/site/dags\"#" "$T_WORK/xdg/dagrun/config.json"
out=$(XDG_CONFIG_HOME=$T_WORK/xdg d list 2>&1)
check "the user's config is found" grep -q "^hello " <<<"$out"

# man page and completion
check "the man page has every command" test "$(grep -c '^\.SS' "$P/share/man/man1/dagrun.1")" -ge 15
if command -v man >/dev/null; then
    check "man renders the page" bash -c "man -l '$P/share/man/man1/dagrun.1' 2>/dev/null | grep -q 'dagrun logs'"
fi
comp() {   # comp WORDS...: the completions of the last word
    bash -c 'source "$1"; shift; COMP_WORDS=("$@"); COMP_CWORD=$(($# - 1)); _dagrun; printf "%s\n" "${COMPREPLY[@]}"' \
        _ "$P/share/bash-completion/completions/dagrun" "$@"
}
export PATH=$P/bin:$PATH
check "completion offers the commands" grep -qx logs <<<"$(comp dagrun lo)"
check "completion offers DAG ids" grep -qx hello <<<"$(comp dagrun -c "$T_WORK/site/config.json" run he)"
rid=$(q "select run_id from dagrun.dag_run where dag_id='hello'")
check "completion offers run ids" grep -qx "$rid" <<<"$(comp dagrun -c "$T_WORK/site/config.json" logs h)"
finish
