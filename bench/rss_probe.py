"""Run one command and report its own peak RSS: ``python -m bench.rss_probe OUT -- CMD...``.

Why a separate small process: on Linux a child's ``ru_maxrss`` is never below the resident
size its parent had when it forked it. At ``exec`` the kernel folds the high-water mark of the
address space being replaced (the parent's copy, or with vfork the parent's own) into the
child's ``maxrss``, which ``wait4`` then reports. Started straight from the bench, which has
just held whole layers in memory to push them, tofu3 would "peak" at the bench's size. Started
from this process, which imports almost nothing, the floor is a few MiB and the figure is
tofu3's own.

It waits for the command with ``os.wait4`` on the command's pid, writes
``<ru_maxrss in KiB> <exit code>`` to OUT, and exits with the command's exit code. SIGTERM and
SIGINT are passed on to the command (by its pid), so ending this process ends the command.
"""

from __future__ import annotations

import os
import signal
import sys


def main(argv: list[str]) -> int:
    """Run ``argv[2:]`` (after ``OUT --``) and record its peak RSS in ``argv[0]``."""
    if len(argv) < 3 or argv[1] != "--":
        sys.stderr.write("usage: python -m bench.rss_probe OUT -- COMMAND [ARG...]\n")
        return 2
    out, command = argv[0], argv[2:]
    pid = os.posix_spawnp(command[0], command, os.environ)

    def pass_on(signum: int, frame: object) -> None:
        os.kill(pid, signum)

    signal.signal(signal.SIGTERM, pass_on)
    signal.signal(signal.SIGINT, pass_on)
    _, status, usage = os.wait4(pid, 0)  # retried by Python after a signal handler runs
    code = os.waitstatus_to_exitcode(status)
    with open(out, "w", encoding="ascii") as handle:
        handle.write(f"{usage.ru_maxrss} {code}\n")
    return code if code >= 0 else 128 - code


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
