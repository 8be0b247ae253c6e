"""One module per peer, ``<peer>_w.py``, each giving the bodies of the workloads it can run.

Module contract (read by ``benchmarks.harness``; contracts of the bodies are in
``benchmarks.workloads``):

- ``PEER``: the column name; ``version() -> str``.
- ``w1`` ... ``w13``: workload bodies. Importing the module fails (ImportError) when the
  peer is not installed; the harness then names the peer as skipped.
- ``NO_EQUIVALENT``: {workload id: why this peer has no honest idiom for it} (shown "—").
- ``NOTES``: {workload id: which idiom was used, where it is not the obvious one}.
- ``CAPS``: {workload id: (max n, reason or None)}: fewer goroutines than the workload's
  size, e.g. for peers whose goroutines are OS threads. A reason is shown as a note.
- ``PATCHED`` (optional): workload ids to run in a worker of their own in which the
  module monkey-patched the stdlib at import; it does so when ``patch_requested()``.
"""

import os

PEERS = ["gopy", "asyncio", "threads", "tpe", "gevent", "trio", "pygolang", "runloom"]
PATCH_ENV = "GOPY_BENCH_PATCH"  # "1" in the environment of a patched worker


def patch_requested() -> bool:
    """True in a worker the harness started for a peer's PATCHED workloads."""
    return os.environ.get(PATCH_ENV) == "1"
