from collections.abc import Callable
from types import TracebackType
from typing import Literal, ParamSpec, final

from .context import Context

__all__ = ["Group", "with_context"]

_P = ParamSpec("_P")

# fn fails by raising or by returning an exception instance, so any return
# type is accepted.
@final
class Group:
    def go(self, fn: Callable[_P, object], /, *args: _P.args, **kwargs: _P.kwargs) -> None: ...
    def try_go(self, fn: Callable[_P, object], /, *args: _P.args, **kwargs: _P.kwargs) -> bool: ...
    def set_limit(self, n: int, /) -> None: ...
    def wait(self) -> None: ...
    def __enter__(self) -> Group: ...
    # Never swallows the block's exception: Literal[False] tells type checkers so.
    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None, /
    ) -> Literal[False]: ...

def with_context(ctx: Context, /) -> tuple[Group, Context]: ...
