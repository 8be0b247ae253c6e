"""gopy.context: Go's context package -- cancellation, deadlines and
request-scoped values shared by goroutines, threads and C code.

    ctx, cancel = context.with_timeout(context.background(), 2.0)
    try:
        i, _, _ = gopy.select(gopy.Recv(results), gopy.Recv(ctx.done()))
    finally:
        cancel()

The cancellation tree lives in the C runtime: a context's ``done()`` is a
``RecvChan`` usable in ``select`` anywhere (``None`` for a context that can
never be cancelled, so ``Recv(ctx.done())`` is then a case that never
proceeds), and ``ctx.handle`` gives C goroutines the same context
(``gopy_context_*`` in gopy.h).  As in Go, call ``cancel`` when done with a
derived context: until then it stays registered with its parent (one that
is never cancelled is freed once nothing holds it or its ``done()``).
"""

from ._gopy import _context as _c

Context = _c.Context
CancelFunc = _c.CancelFunc
AfterFuncStop = _c.AfterFuncStop
Canceled = _c.Canceled
DeadlineExceeded = _c.DeadlineExceeded

background = _c.background
todo = _c.todo
with_cancel = _c.with_cancel
with_cancel_cause = _c.with_cancel_cause
with_deadline = _c.with_deadline
with_deadline_cause = _c.with_deadline_cause
with_timeout = _c.with_timeout
with_timeout_cause = _c.with_timeout_cause
with_value = _c.with_value
without_cancel = _c.without_cancel
after_func = _c.after_func
cause = _c.cause

__all__ = [
    "Context", "CancelFunc", "AfterFuncStop", "Canceled", "DeadlineExceeded",
    "background", "todo", "with_cancel", "with_cancel_cause", "with_deadline",
    "with_deadline_cause", "with_timeout", "with_timeout_cause", "with_value",
    "without_cancel", "after_func", "cause",
]
