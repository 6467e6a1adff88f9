"""Progress bars (tqdm) that vanish when ``verbose=0``."""

from __future__ import annotations

import sys

from tqdm.auto import tqdm


class _Silent:
    """Stands in for a tqdm bar when progress is off: iterates, ignores updates."""

    def __init__(self, iterable=None):
        self._iterable = () if iterable is None else iterable

    def __iter__(self):
        return iter(self._iterable)

    def set_postfix(self, *args, refresh=True, **kwargs):
        pass

    def update(self, n=1):
        pass

    def close(self):
        pass


def progress(iterable, enabled: bool, **kwargs):
    """A tqdm bar over ``iterable`` (or a manual one with ``total=`` when it is None) when ``enabled``,
    otherwise a silent stand-in with the same methods."""
    if not enabled:
        return _Silent(iterable)
    if not _interactive():
        # A log file or a pipe: a line every 30 s instead of a carriage-return update every 0.1 s (a
        # 15-second fit wrote about 1,300 of them).
        kwargs.setdefault("mininterval", 30.0)
    return tqdm(iterable, dynamic_ncols=True, leave=False, **kwargs)


def _interactive() -> bool:
    """A terminal or a notebook (where tqdm.auto draws a widget), as opposed to a file or a pipe."""
    if tqdm.__module__.startswith("tqdm.notebook"):
        return True
    return bool(getattr(sys.stderr, "isatty", lambda: False)())
