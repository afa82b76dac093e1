"""Small timing helpers shared by the benchmark scripts (no timing assertions anywhere)."""

from __future__ import annotations

import time
from collections.abc import Callable


def best_time(fn: Callable[[], object], repeats: int = 5, min_time: float = 0.2) -> float:
    """Best-of-``repeats`` mean seconds per call, each repeat running >= ``min_time`` seconds."""
    fn()  # warm-up
    best = float("inf")
    for _ in range(repeats):
        n, t0 = 0, time.perf_counter()
        while True:
            fn()
            n += 1
            el = time.perf_counter() - t0
            if el >= min_time:
                break
        best = min(best, el / n)
    return best


def fmt_ms(t: float) -> str:
    return f"{t * 1e3:9.3f} ms"
