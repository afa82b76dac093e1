"""Reading SeqHAND shards: a PyTorch ``IterableDataset``, split across DDP ranks and workers."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import IterableDataset, get_worker_info

from seqhand.data.shards import ShardError, decode_sample, iter_shard, read_manifest


def _rank_world() -> tuple[int, int]:
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        return torch.distributed.get_rank(), torch.distributed.get_world_size()
    return 0, 1


class SeqHandShards(IterableDataset):
    """Stream the sequences of one split of a generated SeqHAND dataset.

    Each consumer (DDP rank x DataLoader worker) reads a disjoint part: whole shards when there
    are at least as many shards as consumers, otherwise every k-th sample. With
    ``shuffle=True`` the shard order (and the order inside a buffer) changes with
    :meth:`set_epoch`, deterministically from ``seed``.

    Args:
        root: the dataset folder (with ``manifest.json``).
        split: ``"train"`` or ``"test"``.
        transform: optional function applied to each decoded sample dict.
        shuffle, seed, buffer: shuffling options (buffer = samples shuffled together).
        rank, world_size: override the DDP rank / world size (default: from torch.distributed).
    """

    def __init__(
        self,
        root: str | Path,
        split: str = "train",
        transform: Callable[[dict], object] | None = None,
        shuffle: bool = False,
        seed: int = 0,
        buffer: int = 64,
        rank: int | None = None,
        world_size: int | None = None,
    ) -> None:
        super().__init__()
        self.root = Path(root)
        self.manifest = read_manifest(self.root)
        if split not in self.manifest["splits"]:
            raise ShardError(
                f"{self.root}: no split {split!r}; it has {sorted(self.manifest['splits'])}"
            )
        info = self.manifest["splits"][split]
        self.split = split
        self.shards = [self.root / s["name"] for s in info["shards"]]
        self.num_sequences = int(info["num_sequences"])
        self.transform = transform
        self.shuffle = shuffle
        self.seed = seed
        self.buffer = buffer
        self.epoch = 0
        self._rank, self._world = rank, world_size

    def __len__(self) -> int:
        return self.num_sequences

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def _consumer(self) -> tuple[int, int]:
        rank, world = _rank_world()
        rank = self._rank if self._rank is not None else rank
        world = self._world if self._world is not None else world
        wi = get_worker_info()
        wid, nw = (wi.id, wi.num_workers) if wi is not None else (0, 1)
        return rank * nw + wid, world * nw

    def __iter__(self) -> Iterator:
        cid, n = self._consumer()
        order = list(range(len(self.shards)))
        rng = np.random.default_rng([self.seed, self.epoch])
        if self.shuffle:
            rng.shuffle(order)
        by_shard = len(self.shards) >= n
        mine = order[cid::n] if by_shard else order

        def samples():
            k = 0
            for si in mine:
                for _key, files in iter_shard(self.shards[si]):
                    if by_shard or k % n == cid:
                        yield files
                    k += 1

        stream = samples()
        if self.shuffle and self.buffer > 1:
            stream = _buffer_shuffle(stream, self.buffer, rng)
        for files in stream:
            s = decode_sample(files)
            yield self.transform(s) if self.transform else s


def _buffer_shuffle(it, size: int, rng: np.random.Generator):
    buf = []
    for x in it:
        buf.append(x)
        if len(buf) >= size:
            yield buf.pop(int(rng.integers(len(buf))))
    while buf:
        yield buf.pop(int(rng.integers(len(buf))))


def read_sequences(root: str | Path, split: str = "test", limit: int | None = None) -> list[dict]:
    """Decode the first ``limit`` sequences of a split, in order (for previews and evaluation)."""
    out = []
    for s in SeqHandShards(root, split, rank=0, world_size=1):
        out.append(s)
        if limit is not None and len(out) >= limit:
            break
    return out


class SeqHandIndexed(torch.utils.data.Dataset):
    """Random access to the sequences of one split (map-style), for shuffled training.

    Indexes every shard once (member offsets, no decoding), then reads a sequence's members with
    one seek each. ``dataset[i]`` is the i-th sequence of the split in shard order.
    """

    def __init__(self, root: str | Path, split: str = "train", transform=None) -> None:
        self.root = Path(root)
        manifest = read_manifest(self.root)
        if split not in manifest["splits"]:
            raise ShardError(
                f"{self.root}: no split {split!r}; it has {sorted(manifest['splits'])}"
            )
        self.split = split
        self.transform = transform
        self.index: list[tuple[Path, list[tuple[str, int, int]]]] = []
        import tarfile

        for sh in manifest["splits"][split]["shards"]:
            path = self.root / sh["name"]
            try:
                with tarfile.open(path, "r") as tar:
                    groups: dict[str, list] = {}
                    for m in tar:
                        if m.isfile():
                            key, _, suffix = m.name.rsplit("/", 1)[-1].partition(".")
                            groups.setdefault(key, []).append((suffix, m.offset_data, m.size))
            except (tarfile.TarError, OSError) as e:
                raise ShardError(f"{path}: unreadable shard ({e})") from None
            self.index.extend((path, members) for members in groups.values())

    def __len__(self) -> int:
        return len(self.index)

    def read_files(self, i: int) -> dict[str, bytes]:
        path, members = self.index[i]
        out = {}
        with open(path, "rb") as fh:
            for suffix, off, size in members:
                fh.seek(off)
                out[suffix] = fh.read(size)
        return out

    def __getitem__(self, i: int):
        s = decode_sample(self.read_files(i))
        return self.transform(s) if self.transform else s
