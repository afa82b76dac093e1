"""Small, fast stand-ins for robustness tests: a fake SeqHAND dataset with the full annotation
schema (written in milliseconds, no rendering) and a tiny training config."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from seqhand.data.shards import (
    SCHEMA,
    SCHEMA_VERSION,
    encode_sample,
    shard_name,
    write_manifest,
    write_shard,
)


def full_sample(i: int, split: str = "train", t: int = 2, size: int = 32) -> dict:
    """A sample with every required annotation of :data:`SCHEMA` (random but well-formed)."""
    rng = np.random.default_rng([7, i, len(split)])
    j3 = (rng.normal(size=(t, 21, 3)) * 0.03).astype(np.float32)
    scale = np.full(t, size * 4.0, np.float32)
    trans = np.full((t, 2), size / 2.0, np.float32)
    ann = {
        "theta": (rng.normal(size=(t, 45)) * 0.1).astype(np.float32),
        "theta_pca": (rng.normal(size=(t, 10)) * 0.1).astype(np.float32),
        "betas": (rng.normal(size=10) * 0.1).astype(np.float32),
        "rot": (rng.normal(size=(t, 3)) * 0.3).astype(np.float32),
        "scale": scale,
        "trans": trans,
        "joints3d": j3,
        "joints2d": (j3[..., :2] * scale[:, None, None] + trans[:, None]).astype(np.float32),
        "visible": np.ones((t, 21), bool),
        "in_frame": np.ones((t, 21), bool),
        "bank_index": np.arange(t, dtype=np.int64),
    }
    masks = np.zeros((t, size, size), bool)
    masks[:, size // 4 : 3 * size // 4, size // 4 : 3 * size // 4] = True
    return {
        "frames": rng.integers(0, 256, size=(t, size, size, 3), dtype=np.uint8),
        "masks": masks,
        "ann": ann,
        "meta": {"key": f"{split}-{i:07d}", "split": split, "index": i, "seed": 0},
    }


def write_fake_dataset(root: Path, num_train: int = 8, num_test: int = 4, shard_size: int = 4,
                       frames: int = 2, size: int = 32) -> Path:  # fmt: skip
    """A complete dataset folder (shards + manifest with counts and sha256)."""
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    splits = {}
    for split, n in (("train", num_train), ("test", num_test)):
        if not n:
            continue
        shards = []
        for k, lo in enumerate(range(0, n, shard_size)):
            cnt = min(shard_size, n - lo)
            enc = [(f"{split}-{i:07d}", encode_sample(full_sample(i, split, frames, size), "png"))
                   for i in range(lo, lo + cnt)]  # fmt: skip
            digest = write_shard(root / shard_name(split, k), enc)
            shards.append({"name": shard_name(split, k), "sha256": digest, "count": cnt,
                           "first": lo})  # fmt: skip
        splits[split] = {"num_sequences": n, "shards": shards}
    write_manifest(root, {"format": "seqhand-dataset", "schema_version": SCHEMA_VERSION,
                          "schema": SCHEMA, "config": {"fake": True}, "seed": 0,
                          "frames": frames, "image_size": size, "splits": splits})  # fmt: skip
    return root


# Overrides that make `seqhand train --config tiny` run in about a second per step on CPU.
TINY_TRAIN = ["model.image_size=32", "data.batch_size=2", "data.num_workers=0",
              "data.val_sequences=2", "trainer.log_every_n_steps=1", "optim.warmup_steps=2",
              "trainer.val_every_n_steps=1000", "trainer.ckpt_every_n_steps=1"]  # fmt: skip
