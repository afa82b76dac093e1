"""A resumable, rank-aware sampler: the batch of global step k is a pure function of (seed, k).

Sample stream position ``p = (k * world + rank) * B + j`` for the j-th item of step k on a rank;
epoch ``e = p // N``; the index is ``perm_e[p % N]`` with ``perm_e`` a permutation drawn from
``(seed, e)``. Restarting at step k therefore continues exactly where the run left off, with any
number of DataLoader workers, and ranks never overlap within an epoch.
"""

from __future__ import annotations

import numpy as np
from torch.utils.data import Sampler


class StepSampler(Sampler[int]):
    def __init__(self, num_items: int, batch_size: int, *, seed: int = 0, start_step: int = 0,
                 max_steps: int, rank: int = 0, world_size: int = 1, shuffle: bool = True):  # fmt: skip
        if num_items <= 0:
            raise ValueError("StepSampler needs at least one item")
        self.n, self.b = num_items, batch_size
        self.seed, self.start, self.stop = seed, start_step, max_steps
        self.rank, self.world, self.shuffle = rank, world_size, shuffle
        self._perms: dict[int, np.ndarray] = {}

    def _perm(self, epoch: int) -> np.ndarray:
        if epoch not in self._perms:
            if len(self._perms) > 4:
                self._perms.clear()
            rng = np.random.default_rng([self.seed, epoch])
            self._perms[epoch] = rng.permutation(self.n) if self.shuffle else np.arange(self.n)
        return self._perms[epoch]

    def indices_for_step(self, step: int) -> list[int]:
        base = (step * self.world + self.rank) * self.b
        return [int(self._perm((base + j) // self.n)[(base + j) % self.n]) for j in range(self.b)]

    def __iter__(self):
        for k in range(self.start, self.stop):
            yield from self.indices_for_step(k)

    def __len__(self) -> int:
        return max(0, self.stop - self.start) * self.b
