"""Sequences generated on the fly for training (``data.source: online``).

``OnlineSequences(cfg, split)[k]`` composes sequence ``k`` of ``split`` exactly as
``seqhand generate`` with the same :class:`~seqhand.data.generate.GenerateConfig` would - the
same flows, appearance, camera and pixels, before JPEG/PNG encoding - because both call
:func:`seqhand.data.generate.make_samples`, a pure function of (config, split, index). So an
online run is deterministic by (seed, index), resumes exactly with the step sampler, and splits
across DataLoader workers and DDP ranks like the shards (the sampler hands each worker its
indices). Each worker builds the bank's search index, the encoder and the hand layer once.

Nothing is written but the built-in prior pose bank, cached in ``cache_dir/.cache`` (built once
by the process that constructs the dataset, then only read).
"""

from __future__ import annotations

from pathlib import Path

import torch

from seqhand.data.generate import GenerateConfig, ensure_bank, make_samples


class OnlineSequences(torch.utils.data.Dataset):
    """Map-style dataset of ``num_sequences`` generated sequences of ``split``.

    Args:
        cfg: the generation settings (``preset(...)`` or a :class:`GenerateConfig`).
        split: ``"train"`` or ``"test"`` (different seeds, as in ``generate``).
        num_sequences: the dataset's length (default: ``cfg.num_train`` / ``cfg.num_test``).
        cache_dir: the built-in prior bank is cached in ``cache_dir/.cache``.
        transform: applied to each decoded-form sample (e.g. the training transform).
    """

    def __init__(self, cfg: GenerateConfig, split: str = "train", *,
                 num_sequences: int | None = None, cache_dir: str | Path = ".cache",
                 transform=None) -> None:  # fmt: skip
        self.cfg = cfg.validate()
        if split not in ("train", "test"):
            raise ValueError(f"split must be train or test, got {split!r}")
        self.split = split
        n = num_sequences if num_sequences is not None else (
            cfg.num_train if split == "train" else cfg.num_test)  # fmt: skip
        if n < 1:
            raise ValueError(f"an online dataset needs at least one sequence, got {n}")
        self.num_sequences = int(n)
        self.bank_file = str(ensure_bank(cfg, Path(cache_dir)))
        self.transform = transform

    def __len__(self) -> int:
        return self.num_sequences

    def sample(self, i: int) -> dict:
        """Sequence ``i`` as a sample dict (frames, masks, ann, meta), not transformed."""
        if not 0 <= i < self.num_sequences:
            raise IndexError(f"sequence {i} out of range [0, {self.num_sequences})")
        return make_samples(self.cfg, self.bank_file, self.split, int(i), 1)[0]

    def __getitem__(self, i: int):
        s = self.sample(i)
        return self.transform(s) if self.transform else s
