"""gopy.runtime: the scheduler's knobs and introspection (Go's runtime)."""

from ._gopy import (
    gomaxprocs,
    gosched,
    lock_os_thread,
    num_cpu,
    num_goroutine,
    set_preempt_slice,
    set_stall_warning,
    stats,
    unlock_os_thread,
)
from ._gopy import _goroutines

__all__ = ["gomaxprocs", "num_cpu", "num_goroutine", "gosched", "lock_os_thread",
           "unlock_os_thread", "stack", "stats", "set_stall_warning",
           "set_preempt_slice"]


def stack():
    """A dump of every live goroutine, as Go's runtime.Stack(all=true):
    one block per goroutine with its id, state, what it waits on, its home
    thread (Python goroutines), its Python traceback where it has one, and
    where it was created (Go's "created by")."""
    blocks = []
    for g in _goroutines():
        head = f"goroutine {g['id']} [{g['state']}"
        if g["state"] == "waiting":
            head += f": {g['wait']}"
            if g["wait_seconds"] >= 60:
                head += f", {int(g['wait_seconds'] // 60)} minutes"
        head += "]:"
        lines = [head]
        if g["python"]:
            lines.append(f"  (Python goroutine, bound to thread M{g['home_m']})"
                         if g["home_m"] >= 0 else "  (Python goroutine, not started)")
        else:
            lines.append("  (C goroutine)")
        for filename, lineno, name in g["frames"] or ():
            lines.append(f'  File "{filename}", line {lineno}, in {name}')
        if g["created_by"] is not None:
            name, filename, lineno, creator = g["created_by"]
            lines.append(f"  created by {name}" + (f" in goroutine {creator}" if creator else ""))
            lines.append(f'    File "{filename}", line {lineno}')
        blocks.append("\n".join(lines))
    return "\n\n".join(blocks) + ("\n" if blocks else "")
