"""inspect.signature() for every public callable of gopy, and help() text.

The C functions and types carry CPython's text signatures (a docstring that
starts ``name($self, /, ...)\\n--\\n\\n``), so IDEs, Jupyter and help() show
their parameters.  Exception classes are left as CPython makes them.
"""

import importlib
import inspect
import pydoc
import typing

import pytest

import gopy
from gopy import atomic, context, errgroup, runtime

MODULES = ["gopy", "gopy.runtime", "gopy.atomic", "gopy.context", "gopy.errgroup"]


def _public_callables():
    """(label, object) for every callable in each module's __all__ (not the
    exception classes) and, for the types, every public method plus
    __call__ / __enter__ / __exit__ where the type defines them."""
    found = []
    for modname in MODULES:
        mod = importlib.import_module(modname)
        for name in mod.__all__:
            obj = getattr(mod, name)
            if not callable(obj):
                continue
            if isinstance(obj, type) and issubclass(obj, BaseException):
                continue
            found.append((f"{modname}.{name}", obj))
            if not isinstance(obj, type):
                continue
            for attr in sorted(vars(obj)):
                if attr.startswith("_") and attr not in ("__call__", "__enter__", "__exit__"):
                    continue
                raw = inspect.getattr_static(obj, attr)
                if isinstance(raw, (property, type(gopy.Chan.cap), type(gopy.Cond.l))):
                    continue  # getset and member descriptors: attributes, not methods
                method = getattr(obj, attr)
                if callable(method):
                    found.append((f"{modname}.{name}.{attr}", method))
    return found


PUBLIC = _public_callables()


def test_the_walk_finds_the_public_surface():
    labels = {label for label, _ in PUBLIC}
    # A sample from every module, types, methods and functions: the walk
    # really covers them (a broken walk would pass the test below vacuously).
    for label in ["gopy.Chan", "gopy.Chan.send", "gopy.Chan.arecv", "gopy.RecvChan.recv_ok",
                  "gopy.select", "gopy.go", "gopy.Map.load", "gopy.Mutex.__exit__",
                  "gopy.runtime.set_preempt_slice", "gopy.atomic.Int64.compare_and_swap",
                  "gopy.atomic.add_uint32", "gopy.context.with_timeout",
                  "gopy.context.CancelFunc.__call__", "gopy.errgroup.Group.go",
                  "gopy.errgroup.with_context"]:
        assert label in labels
    assert "gopy.ClosedChannelError" not in labels
    assert len(PUBLIC) > 150


@pytest.mark.parametrize("label,obj", PUBLIC, ids=[label for label, _ in PUBLIC])
def test_every_public_callable_has_a_signature(label, obj):
    sig = inspect.signature(obj)
    assert isinstance(sig, inspect.Signature)


EXPECTED = {
    # functions
    gopy.go: "(fn, /, *args, **kwargs)",
    gopy.offload: "(fn, /, *args, **kwargs)",
    gopy.select: "(*cases, default=False)",
    gopy.sleep: "(d, /)",
    gopy.after: "(d, /)",
    gopy.tick: "(d, /)",
    gopy.after_func: "(d, fn, /, *args)",
    gopy.once_func: "(fn, /)",
    gopy.once_value: "(fn, /)",
    runtime.gomaxprocs: "(n=0, /)",
    runtime.num_cpu: "()",
    runtime.num_goroutine: "()",
    runtime.stats: "()",
    runtime.set_stall_warning: "(d, /)",
    runtime.set_preempt_slice: "(d, /)",
    atomic.load_int32: "(buf, i, /)",
    atomic.compare_and_swap_uint64: "(buf, i, old, new, /)",
    context.background: "()",
    context.with_cancel: "(parent, /)",
    context.with_deadline: "(parent, deadline, /)",
    context.with_timeout_cause: "(parent, d, cause, /)",
    context.with_value: "(parent, key, value, /)",
    context.after_func: "(ctx, fn, /)",
    errgroup.with_context: "(ctx, /)",
    # constructors
    gopy.Chan: "(cap=0, *, ctype=None)",
    gopy.SendChan: "(chan, /)",
    gopy.RecvChan: "(chan, /)",
    gopy.Recv: "(chan)",
    gopy.Send: "(chan, value)",
    gopy.Timer: "(d)",
    gopy.Ticker: "(d)",
    gopy.Mutex: "()",
    gopy.WaitGroup: "()",
    gopy.Cond: "(l)",
    gopy.Pool: "(new=None)",
    gopy.Map: "()",
    atomic.Int32: "(value=0)",
    atomic.Bool: "(value=False)",
    atomic.Value: "(value=None)",
    errgroup.Group: "()",
    # methods, unbound
    gopy.Chan.send: "(self, value, /)",
    gopy.Chan.recv_ok: "(self, /)",
    gopy.Chan.asend: "(self, value, /)",
    gopy.Map.load: "(self, key, /)",
    gopy.Map.compare_and_swap: "(self, key, old, new, /)",
    gopy.WaitGroup.add: "(self, delta=1, /)",
    gopy.WaitGroup.go: "(self, fn, /, *args, **kwargs)",
    gopy.Mutex.__exit__: "(self, /, *exc)",
    atomic.Uint32.and_: "(self, mask, /)",
    errgroup.Group.try_go: "(self, fn, /, *args, **kwargs)",
    errgroup.Group.__exit__: "(self, exc_type, exc, tb, /)",
    # class methods
    gopy.Chan.from_handle: "(handle, ctype)",
    context.Context.from_handle: "(handle, /)",
}


@pytest.mark.parametrize("obj,expected", list(EXPECTED.items()),
                         ids=[getattr(o, "__qualname__", repr(o)) for o in EXPECTED])
def test_exact_signatures(obj, expected):
    assert str(inspect.signature(obj)) == expected


def test_bound_methods_and_returned_callables():
    ch = gopy.Chan(1)
    assert str(inspect.signature(ch.send)) == "(value, /)"
    assert str(inspect.signature(ch.recv_only().recv)) == "()"
    assert str(inspect.signature(gopy.RWMutex().rlocker().lock)) == "()"
    ctx, cancel = context.with_cancel(context.background())
    try:
        assert str(inspect.signature(cancel)) == "(cause=None)"
        stop = context.after_func(ctx, lambda: None)
        assert str(inspect.signature(stop)) == "()"
        assert stop() is True  # __call__ as a method leaves calling as it was
    finally:
        cancel()
    assert ctx.err() is not None
    once = gopy.once_value(lambda: 42)
    assert str(inspect.signature(once)) == "()"
    assert once() == 42 and once() == 42


def test_signatures_are_what_the_functions_accept():
    # The positional-only / keyword parts of the text signatures are real.
    with pytest.raises(TypeError):
        gopy.go(fn=print)
    assert gopy.Chan(cap=2).cap == 2
    with pytest.raises(TypeError):
        gopy.Chan(0, None)  # ctype is keyword-only
    assert gopy.select(default=True) == (-1, None, False)
    assert gopy.Pool(new=list).get() == []
    assert atomic.Int64(value=5).load() == 5
    with pytest.raises(TypeError):
        runtime.gomaxprocs(n=0)  # positional-only


def test_docstrings_keep_their_prose_without_the_signature_marker():
    for obj in (gopy.go, gopy.Chan, gopy.Chan.send, gopy.Map.load, runtime.set_preempt_slice,
                atomic.Int32, context.with_timeout):
        doc = obj.__doc__
        assert doc and "--" not in doc.splitlines()[0] and "$" not in doc
    assert gopy.go.__doc__.startswith("Run fn(*args, **kwargs) in a new goroutine")
    assert gopy.Chan.__doc__.startswith("A Go channel.")
    assert gopy.go.__text_signature__ == "($module, fn, /, *args, **kwargs)"
    assert gopy.Chan.__text_signature__ == "(cap=0, *, ctype=None)"


def test_help_text_shows_signature_and_prose():
    text = pydoc.render_doc(gopy.go, renderer=pydoc.plaintext)
    assert "go(fn, /, *args, **kwargs)" in text
    assert "Run fn(*args, **kwargs) in a new goroutine" in text
    text = pydoc.render_doc(gopy.Chan, renderer=pydoc.plaintext)
    assert "Chan(cap=0, *, ctype=None)" in text
    assert "A Go channel.  cap 0 is unbuffered." in text
    assert "send(self, value, /)" in text
    assert "Raises ClosedChannelError if the channel is or gets closed." in text
    assert "recv_ok(self, /)" in text
    assert "\n--\n" not in text


# Every class the stubs declare generic: subscripting works at runtime too, so
# an annotation such as `pool: gopy.Pool[bytes]` evaluated at import time (or
# by typing.get_type_hints) does not raise.
GENERIC = [(gopy.Chan, (int,)), (gopy.SendChan, (int,)), (gopy.RecvChan, (int,)),
           (gopy.Recv, (int,)), (gopy.Send, (int,)), (gopy.Cond, (gopy.Mutex,)),
           (gopy.Pool, (bytes,)), (gopy.Map, (str, int)), (atomic.Value, (int,))]


@pytest.mark.parametrize("cls,args", GENERIC, ids=[cls.__qualname__ for cls, _ in GENERIC])
def test_generic_types_subscript_at_runtime(cls, args):
    alias = cls[args]
    assert typing.get_origin(alias) is cls
    assert typing.get_args(alias) == args
