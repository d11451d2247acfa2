#!/usr/bin/env python3
"""Runs a command on a pseudo-terminal of 80x24 and writes what the terminal received.
usage: pty_run.py OUT_FILE CMD [ARGS...]; exits with the command's exit code.
PTY_SIGINT_AFTER=S: sends SIGINT to the command once S seconds have passed."""
import fcntl, os, pty, select, signal, struct, sys, termios, time

out_path, argv = sys.argv[1], sys.argv[2:]
pid, fd = pty.fork()
if pid == 0:
    os.execvp(argv[0], argv)
fcntl.ioctl(fd, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 80, 0, 0))
data = b""
sigint_at = float(os.environ.get("PTY_SIGINT_AFTER", "0") or 0)
start = time.monotonic()
while True:
    if sigint_at and time.monotonic() - start >= sigint_at:
        os.kill(pid, signal.SIGINT)
        sigint_at = 0
    if not select.select([fd], [], [], 0.05)[0]:
        continue
    try:
        chunk = os.read(fd, 65536)
    except OSError:
        break
    if not chunk:
        break
    data += chunk
_, status = os.waitpid(pid, 0)
with open(out_path, "wb") as f:
    f.write(data)
sys.exit(os.waitstatus_to_exitcode(status))
