"""time.sleep: inside a goroutine it parks, as gopy.sleep does.

The replacement is written in C (src/python/hooks.c) because code outside
goroutines calls time.sleep all the time: there it costs one C call more
than the original.  It validates its argument by time.sleep's own rules and
leaves every input time.sleep rejects to time.sleep, so errors are the
original's; time.sleep(0) lets the goroutines sharing the thread run.
"""

import time

from .. import _gopy

_original = time.sleep


def install():
    time.sleep = _gopy.wrap_time_sleep(_original)


def uninstall():
    time.sleep = _original
