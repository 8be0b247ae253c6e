"""gopy.errgroup: golang.org/x/sync/errgroup -- goroutines working on parts
of one task, with the first failure kept and the group's context cancelled.

    g, ctx = errgroup.with_context(context.background())
    for url in urls:
        g.go(fetch, ctx, url)
    g.wait()            # raises the first failure, with its traceback

A function fails by raising or by returning an exception instance; later
failures are dropped, as in Go.  ``with errgroup.Group() as g:`` waits on
leaving the block (and, if the block raised, cancels the group's context
first so that waiting cannot hang).
"""

from ._gopy import _errgroup as _e

Group = _e.Group
with_context = _e.with_context

__all__ = ["Group", "with_context"]
