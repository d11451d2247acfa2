#!/usr/bin/env python3
"""Runs a command on a pseudo-terminal of 80x24 and writes what the terminal received.
usage: pty_run.py OUT_FILE CMD [ARGS...]; exits with the command's exit code."""
import fcntl, os, pty, struct, sys, termios

out_path, argv = sys.argv[1], sys.argv[2:]
pid, fd = pty.fork()
if pid == 0:
    os.execvp(argv[0], argv)
fcntl.ioctl(fd, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 80, 0, 0))
data = b""
while True:
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
