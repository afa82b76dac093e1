"""Wall time per named stage of a pipeline, for benchmarks (timing never changes a result).

    times = StageTimes()
    with stage(times, "render"):
        ...
    times["render"]  # seconds, summed over every ``with`` block of that name

Library functions take ``times: StageTimes | None = None``; with ``None`` a stage costs one
``nullcontext``.
"""

from __future__ import annotations

import contextlib
import time


class StageTimes(dict):
    """``{stage name: seconds}``, accumulated by :func:`stage` (insertion order = first use)."""

    def add(self, name: str, seconds: float) -> None:
        self[name] = self.get(name, 0.0) + seconds

    @property
    def total(self) -> float:
        return sum(self.values())


@contextlib.contextmanager
def _timed(times: StageTimes, name: str):
    t0 = time.perf_counter()
    try:
        yield
    finally:
        times.add(name, time.perf_counter() - t0)


def stage(times: StageTimes | None, name: str):
    """Context manager adding the wall time of its block to ``times[name]`` (no-op for None)."""
    return contextlib.nullcontext() if times is None else _timed(times, name)
