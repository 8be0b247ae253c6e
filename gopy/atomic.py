"""gopy.atomic: Go's sync/atomic.

Typed cells -- Int32, Int64, Uint32, Uint64, Bool, Value -- and functions on
the elements of any writable buffer (bytearray, memoryview, array.array,
NumPy arrays), all sequentially consistent and lock-free in C.  Integers
wrap as their C types do.
"""

from ._gopy import _atomic

Int32 = _atomic.Int32
Int64 = _atomic.Int64
Uint32 = _atomic.Uint32
Uint64 = _atomic.Uint64
Bool = _atomic.Bool
Value = _atomic.Value

_KINDS = ("int32", "int64", "uint32", "uint64")
_OPS = ("load", "store", "add", "swap", "compare_and_swap")
globals().update({f"{op}_{kind}": getattr(_atomic, f"{op}_{kind}")
                  for op in _OPS for kind in _KINDS})

__all__ = ["Int32", "Int64", "Uint32", "Uint64", "Bool", "Value"] + [
    f"{op}_{kind}" for op in _OPS for kind in _KINDS]
