#!/usr/bin/env bash
# Writes the dagrun(1) man page to stdout, generated from the binary's --help texts:
# gen-man.sh BINARY [VERSION]. The help texts are the one source; this only sets them in roff.
set -euo pipefail
bin=$(realpath "$1")
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
echo '{}' >"$tmp/config.json"
d() { (cd "$tmp" && "$bin" -c "$tmp/config.json" "$@" 2>/dev/null); }
version=${2:-$(d --version | awk '{ print $2 }')}
# roff: a backslash is \e; a leading . or ' is escaped; every help line is kept as it is.
esc() { sed -e 's/\\/\\e/g' -e "s/^\\([.']\\)/\\\\\\&\\1/"; }
cat <<ROFF
.TH DAGRUN 1 "" "dagrun $version" "User Commands"
.SH NAME
dagrun \- run DAGs of task plugins on a schedule, with run history in PostgreSQL
.SH SYNOPSIS
.B dagrun
[\fB\-\-version\fR] [\fB\-c\fR \fICONFIG\fR] [\fB\-\-log\-format\fR \fIFMT\fR] [\fB\-\-log\-level\fR \fILEVEL\fR] \fICOMMAND\fR [\fIARGS\fR]
.SH DESCRIPTION
.nf
ROFF
d --help | esc
echo '.fi'
echo '.SH COMMANDS'
for c in $(d --help | awk '/^commands:/ { on = 1; next } on && /^  [a-z]/ { print $1 } /^$/ && on { exit }'); do
    echo ".SS $c"
    echo '.nf'
    d "$c" --help | esc
    echo '.fi'
done
cat <<'ROFF'
.SH FILES
.TP
.I PREFIX/lib/dagrun
task plugins (plugin_dir when the config names none)
.TP
.I PREFIX/share/dagrun/schema.sql
the tables \fBdagrun initdb\fR creates
.TP
.I PREFIX/share/dagrun/systemd
example units for the scheduler
.SH ENVIRONMENT
.TP
.B DATABASE_URL
the PostgreSQL connection (overrides database_url)
.TP
.B DAGRUN_CONFIG
the config file when \fB\-c\fR is not given
ROFF
