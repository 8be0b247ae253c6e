"""Deadlines for the netpoller (time.monotonic() seconds), from timeouts."""

import time

_monotonic = time.monotonic


def deadline_after(seconds):
    """The monotonic time `seconds` from now; None (no deadline) for None."""
    return None if seconds is None else _monotonic() + seconds
