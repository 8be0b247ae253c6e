"""Attribute replacements that can be undone, for the hook families."""

_MISSING = object()


class Patches:
    """Replaced attributes of modules and classes, with what they were: a
    class attribute that was inherited (socket.socket.recv comes from
    _socket.socket) is deleted again rather than set."""

    def __init__(self):
        self._saved = []  # (owner, name, previous own value or _MISSING), in order

    def replace(self, owner, name, new):
        self._saved.append((owner, name, vars(owner).get(name, _MISSING)))
        setattr(owner, name, new)

    def undo(self):
        while self._saved:
            owner, name, previous = self._saved.pop()
            if previous is _MISSING:
                delattr(owner, name)
            else:
                setattr(owner, name, previous)
