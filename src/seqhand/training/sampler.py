"""A resumable, rank-aware sampler: the batch of global step k is a pure function of (seed, k).

Sample stream position ``p = (k * world + rank) * B + j`` for the j-th item of step k on a rank;
epoch ``e = p // N``; the index is ``perm_e[p % N]`` with ``perm_e`` a permutation drawn from
``(seed, e)`` (plus ``e * N`` with ``epoch_offsets``, for datasets that draw per-epoch
augmentation from the index, :class:`seqhand.training.augment.AugmentedSet`). Restarting at
step k therefore continues exactly where the run left off, with any number of DataLoader
workers, and ranks never overlap within an epoch.

For Lightning the whole run is one epoch of ``max_steps`` batches, and ``len()`` says so whatever
``start_step`` is: on resume Lightning restores its in-epoch batch counter (= the global step),
so the loader must still count ``max_steps`` batches, of which it yields the last
``max_steps - start_step``. (A length that shrank with the start step ended the epoch early
and replayed batches after any resume before ``max_steps / 2``.)
"""

from __future__ import annotations

import numpy as np
from torch.utils.data import Sampler


class StepSampler(Sampler[int]):
    def __init__(self, num_items: int, batch_size: int, *, seed: int = 0, start_step: int = 0,
                 max_steps: int, rank: int = 0, world_size: int = 1, shuffle: bool = True,
                 epoch_offsets: bool = False):  # fmt: skip
        if num_items <= 0:
            raise ValueError("StepSampler needs at least one item")
        self.n, self.b = num_items, batch_size
        self.seed, self.start, self.stop = seed, start_step, max_steps
        self.rank, self.world, self.shuffle = rank, world_size, shuffle
        self.offsets = epoch_offsets
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
        out = []
        for p in range(base, base + self.b):
            e = p // self.n
            out.append(int(self._perm(e)[p % self.n]) + (e * self.n if self.offsets else 0))
        return out

    def __iter__(self):
        for k in range(self.start, self.stop):
            yield from self.indices_for_step(k)

    def __len__(self) -> int:
        """Items of the whole run (steps ``0 .. max_steps-1``), independent of ``start_step``."""
        return max(0, self.stop) * self.b
