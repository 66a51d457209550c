#!/usr/bin/env python3
"""supervisord event listener: writes each program's output to the container's log, every line
prefixed with the program's name (`proxy   | ...`). It writes to its stderr, which
supervisord.conf sends to supervisord's stdout; its stdin and stdout speak the listener protocol."""

import io
import signal
import sys

WIDTH = 7  # the longest program name, "control"
MAX_PENDING = 64 * 1024  # a line without its newline is written anyway past this size


def fields(line):
    return dict(item.split(":", 1) for item in line.split())


def main():
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    # supervisord counts an event's `len` in characters, not bytes: read it as text.
    events = io.TextIOWrapper(sys.stdin.buffer, encoding="utf-8", errors="replace", newline="")
    protocol = sys.stdout
    log = io.TextIOWrapper(sys.stderr.buffer, encoding="utf-8", errors="replace", newline="")
    pending = {}
    while True:
        protocol.write("READY\n")
        protocol.flush()
        line = events.readline()
        if not line:
            return
        payload = events.read(int(fields(line)["len"]))
        meta, _, data = payload.partition("\n")
        name = fields(meta).get("processname", "?")
        lines = (pending.pop(name, "") + data).split("\n")
        tail = lines.pop()
        if len(tail) > MAX_PENDING:
            lines.append(tail)
        elif tail:
            pending[name] = tail
        if lines:
            prefix = name.ljust(WIDTH) + " | "
            log.write("".join(prefix + text + "\n" for text in lines))
            log.flush()
        protocol.write("RESULT 2\nOK")
        protocol.flush()


if __name__ == "__main__":
    main()
