"""Mistakes the stubs must catch: scripts/typecheck.sh runs mypy --strict on
this file and expects exactly the errors marked `# E: code` on each line,
no more, no fewer.  Never run."""

import gopy
from gopy import Chan, Recv, RecvChan, Send, WaitGroup, errgroup


def add(a: int, b: int) -> int:
    return a + b


gopy.go(add, 1, "2")  # E: arg-type
gopy.go(add, 1)  # E: call-arg
gopy.go(add, 1, 2, c=3)  # E: call-arg
WaitGroup().go(add, "1", 2)  # E: arg-type
errgroup.Group().go(add, 1, None)  # E: arg-type
errgroup.Group().try_go(add)  # E: call-arg
total: str = gopy.offload(add, 1, 2)  # E: assignment
gopy.after_func(1.0, add, 1)  # E: arg-type
gopy.sleep("1s")  # E: arg-type

ints: Chan[int] = Chan()
ints.send("one")  # E: arg-type
ints.send_only().recv()  # E: attr-defined
ints.recv_only().send(1)  # E: attr-defined
Recv(ints.send_only())  # E: arg-type
Send(ints.recv_only(), 1)  # E: arg-type
names: RecvChan[str] = ints.recv_only()  # E: assignment

i, value, ok = gopy.select(Recv(ints), Recv(gopy.after(1.0)))
exact: int = value  # E: assignment
got: int | float | None = value


async def awaits() -> None:
    text: str = await gopy.to_goroutine(add, 1, 2)  # E: arg-type
