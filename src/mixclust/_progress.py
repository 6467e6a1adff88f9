"""Progress bars (tqdm) that vanish when ``verbose=0``."""

from __future__ import annotations

from tqdm.auto import tqdm


class _Silent:
    """Stands in for a tqdm bar when progress is off: iterates, ignores updates."""

    def __init__(self, iterable=None):
        self._iterable = () if iterable is None else iterable

    def __iter__(self):
        return iter(self._iterable)

    def set_postfix(self, *args, **kwargs):
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
    return tqdm(iterable, dynamic_ncols=True, leave=False, **kwargs)
