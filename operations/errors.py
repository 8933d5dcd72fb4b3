"""The one base class of every error a user can cause (a spec mistake, a damaged file, a
missing package): commands catch ``PureffcvError`` once and print ``str(error)``, which is
always one line. It lives in ``operations``, the lowest package, so every layer can raise it."""


class PureffcvError(Exception):
    """A user-facing error: ``str()`` is one line that says what is wrong and, where it helps,
    what would be right. Subclasses add data (a file position, a path) but keep that rule."""

    #: True when ``str()`` starts with its own ``FILE:LINE:COL`` (the CLI then adds no prefix)
    located = False

    def __str__(self) -> str:
        return " ".join(super().__str__().split())
