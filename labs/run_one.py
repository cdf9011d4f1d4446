"""One run of `labs test`: `python -m labs.run_one <pytest arguments>` is `python -m pytest`,
plus two signals the runner sends to a run that has hung, both answered in the run's log:

* SIGUSR1: faulthandler writes the stack of every thread. It works from C, so it answers even
  when every Python thread is stuck.
* SIGUSR2: the names of the threads (`MainThread` and those your code names) by the ids the
  stacks above show.

SIGUSR2 also writes the events of every lab test timeline still recording into test-failures/
and names each file in the log ("timeline events: ..."), so that `labs test` can draw the hung
run's timeline (labs/timeline).

Both write to a duplicate of file descriptor 2, taken before pytest starts: pytest's output
capture swaps sys.stderr (and may redirect fd 2 itself), but not this duplicate.
"""

from __future__ import annotations

import faulthandler
import os
import signal
import sys
import threading

from labs.timeline import dump_active

_log = sys.stderr   # replaced in main()


def _write_thread_names(signum: int, frame: object) -> None:
    lines = ["Thread names, by the ids of the stacks above:"]
    lines += [f"  0x{thread.ident or 0:016x}  {thread.name}" for thread in threading.enumerate()]
    _log.write("\n".join(lines) + "\n\n")
    _log.flush()
    try:
        dump_active(_log)
    except Exception as exc:  # the thread names matter more
        _log.write(f"timeline: not written: {type(exc).__name__}: {exc}\n")
        _log.flush()


def main() -> int:
    global _log
    _log = os.fdopen(os.dup(2), "w")
    faulthandler.register(signal.SIGUSR1, file=_log, all_threads=True)
    signal.signal(signal.SIGUSR2, _write_thread_names)
    import pytest

    return pytest.main(sys.argv[1:])


if __name__ == "__main__":
    raise SystemExit(main())
