#!/usr/bin/env python3
"""Checks a terminal transcript of `dagrun run` (pty_run.py's file): what each terminal row
shows at the end (the text after its last carriage return, erase-line codes removed).
usage: pty_check.py FILE CHECK where CHECK is
  glued   no row shows a progress bar and a log line together
  bars    at least one bar was drawn and every bar's counts add up
  table   the summary table's counts add up on every row
Prints what is wrong and exits 1."""
import re, sys

data = open(sys.argv[1], "rb").read().decode("utf-8", "replace").replace("\r\n", "\n")
check = sys.argv[2]
rows = []
for raw in data.split("\n"):
    rows.append(raw.split("\r")[-1].replace("\x1b[K", ""))
BAR = re.compile(r"\[[#.]{10}\] (\d+)/(\d+) units [0-9.]+s \| ended (\d+) = ((?:\d+ \w+(?: \+ )?)+)")
LOG = re.compile(r"\d\d:\d\d:\d\d\.\d\d\dZ ")
bad = []
if check == "glued":
    for r in rows:
        if re.search(r"\[[#.]{10,}\]", r) and LOG.search(r):
            bad.append(r)
elif check == "bars":
    bars = BAR.findall(data)
    if not bars:
        bad.append("no progress bar drawn")
    for b in bars:
        parts = re.findall(r"(\d+) (ok|skipped|failed|cancelled)", b[3])
        if sum(int(x) for x, _ in parts) != int(b[2]) or int(b[0]) > int(b[1]):
            bad.append("counts do not add up: %r" % (b,))
elif check == "table":
    head = None
    for r in rows:
        f = r.split()
        if f[:7] == ["TASK", "OK", "SKIPPED", "FAILED", "CANCELLED", "ENDED", "WORKER"]:
            head = True
            continue
        if head and len(f) == 8 and all(x.isdigit() for x in f[1:6]):
            n = [int(x) for x in f[1:6]]
            if sum(n[:4]) != n[4]:
                bad.append("row does not add up: " + r)
        elif head:
            head = None
    if "TASK" not in data:
        bad.append("no summary table")
for b in bad:
    print("pty_check %s: %s" % (check, b))
sys.exit(1 if bad else 0)
