"""Fail points: named places where a test can kill the process to prove a rerun recovers.

`FLUXORA_FAILPOINT=<name>` makes `failpoint(name)` send SIGKILL to its own process, the way an
out-of-memory killer or a lost machine would end a run: no exception handlers, no `finally`,
no flush. Unset (always, outside the fault-tolerance tests) a fail point costs one dict lookup.

Names: `after:<step>` at each pipeline step boundary (ingest, validate, features, train,
monitor), and inside training `train:backtested`, `train:fitted`, `registry:logged`,
`registry:version_created`, `registry:challenger_set`, `registry:champion_moved`.
"""

from __future__ import annotations

import os
import signal

FAILPOINT_ENV = "FLUXORA_FAILPOINT"


def failpoint(name: str) -> None:
    if os.environ.get(FAILPOINT_ENV) == name:
        os.kill(os.getpid(), signal.SIGKILL)
