"""gopy under a type checker: a hashing pipeline, a fan-out with errgroup and
a coroutine awaiting a goroutine, all clean under ``mypy --strict``.

    python examples/typed.py
    mypy --strict examples/typed.py      # scripts/typecheck.sh, run by CI

The stubs (gopy/*.pyi) make Chan generic, with send-only and receive-only
views; go, WaitGroup.go, errgroup's Group.go, offload and to_goroutine check
the arguments against the function they are given; select's value is the
union of its Recv cases' element types, plus None.
"""

import asyncio
import hashlib
from dataclasses import dataclass

import gopy
from gopy import Chan, Recv, RecvChan, SendChan, WaitGroup, atomic, context, errgroup


@dataclass(frozen=True)
class Job:
    id: int
    payload: bytes


@dataclass(frozen=True)
class Digest:
    job_id: int
    hex: str


def produce(jobs: SendChan[Job], n: int) -> None:
    for i in range(n):
        jobs.send(Job(i, f"payload {i}".encode() * 1000))
    jobs.close()


def hash_jobs(jobs: RecvChan[Job], out: SendChan[Digest], hashed: atomic.Int64) -> None:
    for job in jobs:  # until produce closes the channel
        # hashlib releases the GIL on large inputs: a helper thread does it
        # while this goroutine parks.
        h = gopy.offload(hashlib.sha256, job.payload)
        out.send(Digest(job.id, h.hexdigest()))
        hashed.add(1)


def close_after(wg: WaitGroup, ch: SendChan[Digest]) -> None:
    wg.wait()
    ch.close()


def pipeline(n_jobs: int, n_workers: int) -> dict[int, str]:
    jobs: Chan[Job] = Chan(n_workers)
    digests: Chan[Digest] = Chan(n_workers)
    hashed = atomic.Int64()
    gopy.go(produce, jobs.send_only(), n_jobs)
    wg = WaitGroup()
    for _ in range(n_workers):
        wg.go(hash_jobs, jobs.recv_only(), digests.send_only(), hashed)
    gopy.go(close_after, wg, digests.send_only())
    result = {d.job_id: d.hex for d in digests}
    assert hashed.load() == n_jobs
    return result


def lookup(ctx: context.Context, name: str, sizes: gopy.Map[str, int]) -> None:
    """Stands in for a request that honours ctx: it gives up when ctx is done."""
    i, value, _ = gopy.select(Recv(ctx.done()), Recv(gopy.after(0.01)))
    if i == 0:
        err = ctx.err()
        assert err is not None
        raise err
    # value: float | None, from the union of the two cases' element types
    assert isinstance(value, float)
    sizes.store(name, len(name))


def lookup_all(names: list[str], timeout: float) -> dict[str, int]:
    ctx, cancel = context.with_timeout(context.background(), timeout)
    try:
        g, gctx = errgroup.with_context(ctx)
        g.set_limit(4)
        sizes: gopy.Map[str, int] = gopy.Map()
        for name in names:
            g.go(lookup, gctx, name, sizes)
        g.wait()  # raises the first failure
    finally:
        cancel()
    found: dict[str, int] = {}

    def keep(name: str, size: int) -> bool:
        found[name] = size
        return True

    sizes.range(keep)
    return found


def first_digest(digests: RecvChan[Digest], timeout: float) -> Digest | None:
    i, value, ok = gopy.select(Recv(digests), Recv(gopy.after(timeout)))
    if i == 0 and ok:
        assert isinstance(value, Digest)
        return value
    return None


async def from_asyncio() -> int:
    # The loop goes on while the pipeline runs in goroutines.
    digests = await gopy.to_goroutine(pipeline, 8, 2)
    ch: Chan[str] = Chan(1)
    await ch.asend("ready")
    i, word, ok = await gopy.aselect(Recv(ch), default=True)
    assert (i, word, ok) == (0, "ready", True)
    return len(digests)


def main() -> None:
    digests = pipeline(n_jobs=32, n_workers=4)
    assert sorted(digests) == list(range(32))
    sizes = lookup_all(["alpha", "beta", "gamma"], timeout=5.0)
    assert sizes == {"alpha": 5, "beta": 4, "gamma": 5}
    late: Chan[Digest] = Chan()
    assert first_digest(late.recv_only(), 0.01) is None
    assert asyncio.run(from_asyncio()) == 8
    print(f"{len(digests)} digests, {len(sizes)} lookups: ok")


if __name__ == "__main__":
    main()
