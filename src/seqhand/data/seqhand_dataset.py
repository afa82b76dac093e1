"""Reading SeqHAND shards: a PyTorch ``IterableDataset``, split across DDP ranks and workers."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import IterableDataset, get_worker_info

from seqhand.data.shards import (
    SampleError,
    ShardError,
    check_tar_end,
    decode_sample,
    iter_shard,
    member_key,
    read_manifest,
    required_annotations,
    verify_dataset,
)


def _open_split(root: Path, split: str, verify: bool) -> tuple[dict, dict]:
    """The manifest and one split's entry, checked: the split exists, its shard counts add
    up to its number of sequences, and (``verify``) every shard's sha256 and count match."""
    manifest = read_manifest(root)
    if split not in manifest["splits"]:
        raise ShardError(f"{root}: no split {split!r}; it has {sorted(manifest['splits'])}")
    info = manifest["splits"][split]
    counts = [sh.get("count") for sh in info["shards"]]
    if None not in counts and sum(counts) != int(info["num_sequences"]):
        raise ShardError(
            f"{root}/manifest.json: the shards of {split!r} count {sum(counts)} sequences but "
            f"num_sequences says {info['num_sequences']}"
        )
    if verify:
        problems = verify_dataset(root, [split])
        if problems:
            more = f" (and {len(problems) - 1} more problems)" if len(problems) > 1 else ""
            raise ShardError(f"{problems[0]}{more}; check with `seqhand verify {root}`")
    return manifest, info


def decode_checked(files: dict[str, bytes], shard: Path, key: str, required=frozenset()):
    """:func:`decode_sample` with the shard and sample named in its error."""
    try:
        return decode_sample(files, required)
    except SampleError as e:
        raise SampleError(f"{shard}: sample {key}: {e}") from None


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
        verify: compare every shard of the split with the manifest's sha256 and counts on
            open (reads every byte once).
        on_error: ``"raise"`` (default): a damaged shard or sample is a :class:`ShardError`
            naming shard and sample; ``"skip"``: it is left out and named in ``skipped``
            (per consumer: each DataLoader worker keeps its own list).
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
        verify: bool = False,
        on_error: str = "raise",
    ) -> None:
        super().__init__()
        if on_error not in ("raise", "skip"):
            raise ValueError(f"on_error must be 'raise' or 'skip', got {on_error!r}")
        self.root = Path(root)
        self.manifest, info = _open_split(self.root, split, verify)
        self.split = split
        self.shards = [self.root / s["name"] for s in info["shards"]]
        self.counts = [s.get("count") for s in info["shards"]]
        self.required = required_annotations(self.manifest)
        self.on_error = on_error
        self.skipped: list[str] = []
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
                shard, seen = self.shards[si], 0
                try:
                    for key, files in iter_shard(shard):
                        seen += 1
                        if by_shard or k % n == cid:
                            yield shard, key, files
                        k += 1
                    expected = self.counts[si]
                    if expected is not None and seen != expected:
                        raise ShardError(
                            f"{shard}: {seen} samples but the manifest says {expected}; the "
                            f"shard is truncated or damaged (check: seqhand verify {self.root})"
                        )
                except ShardError as e:
                    if self.on_error == "raise":
                        raise
                    self.skipped.append(f"{shard.name}: {e}".replace(f"{shard}: ", "", 1))
                    if self.counts[si] is not None:
                        k += max(0, self.counts[si] - seen)
            if n == 1 and k != self.num_sequences and not self.skipped:
                raise ShardError(
                    f"{self.root}: split {self.split!r} holds {k} sequences but the manifest "
                    f"says {self.num_sequences}"
                )

        stream = samples()
        if self.shuffle and self.buffer > 1:
            stream = _buffer_shuffle(stream, self.buffer, rng)
        for shard, key, files in stream:
            try:
                s = decode_checked(files, shard, key, self.required)
            except SampleError:
                if self.on_error == "raise":
                    raise
                self.skipped.append(f"{shard.name}:{key}")
                continue
            yield self.transform(s) if self.transform else s


def _buffer_shuffle(it, size: int, rng: np.random.Generator):
    buf = []
    for x in it:
        buf.append(x)
        if len(buf) >= size:
            yield buf.pop(int(rng.integers(len(buf))))
    while buf:
        yield buf.pop(int(rng.integers(len(buf))))


def read_sequences(root: str | Path, split: str = "test", limit: int | None = None,
                   **options) -> list[dict]:  # fmt: skip
    """Decode the first ``limit`` sequences of a split, in order (for previews and evaluation);
    ``options`` go to :class:`SeqHandShards` (``verify``, ``on_error``)."""
    out = []
    for s in SeqHandShards(root, split, rank=0, world_size=1, **options):
        out.append(s)
        if limit is not None and len(out) >= limit:
            break
    return out


class SeqHandIndexed(torch.utils.data.Dataset):
    """Random access to the sequences of one split (map-style), for shuffled training.

    Indexes every shard once (member offsets, no decoding), then reads a sequence's members with
    one seek each. ``dataset[i]`` is the i-th sequence of the split in shard order.
    """

    def __init__(self, root: str | Path, split: str = "train", transform=None,
                 verify: bool = False) -> None:  # fmt: skip
        self.root = Path(root)
        manifest, info = _open_split(self.root, split, verify)
        self.split = split
        self.transform = transform
        self.required = required_annotations(manifest)
        self.index: list[tuple[Path, str, list[tuple[str, int, int]]]] = []
        import tarfile

        for sh in info["shards"]:
            path = self.root / sh["name"]
            try:
                end = 0
                with tarfile.open(path, "r") as tar:
                    groups: dict[str, list] = {}
                    for m in tar:
                        end = m.offset_data + -(-m.size // 512) * 512
                        key, suffix = member_key(path, m.name)
                        if not m.isfile():
                            raise ShardError(f"{path}: member {m.name!r} is not a regular file")
                        groups.setdefault(key, []).append((suffix, m.offset_data, m.size))
                size = path.stat().st_size
                check_tar_end(path, end, None)
            except (tarfile.TarError, OSError) as e:
                raise ShardError(f"{path}: unreadable shard ({' '.join(str(e).split())})") from None
            bad = [k for k, ms in groups.items() if any(o + n > size for _, o, n in ms)]
            if bad:
                raise ShardError(f"{path}: sample {bad[0]}: cut short (the shard is truncated)")
            if "count" in sh and len(groups) != sh["count"]:
                raise ShardError(
                    f"{path}: {len(groups)} samples but the manifest says {sh['count']}; the "
                    f"shard is truncated or damaged (check: seqhand verify {self.root})"
                )
            self.index.extend((path, key, members) for key, members in groups.items())

    def __len__(self) -> int:
        return len(self.index)

    def read_files(self, i: int) -> dict[str, bytes]:
        path, key, members = self.index[i]
        out = {}
        with open(path, "rb") as fh:
            for suffix, off, size in members:
                fh.seek(off)
                out[suffix] = fh.read(size)
                if len(out[suffix]) != size:
                    raise ShardError(f"{path}: sample {key}: {suffix} cut short (file changed?)")
        return out

    def __getitem__(self, i: int):
        path, key, _ = self.index[i]
        s = decode_checked(self.read_files(i), path, key, self.required)
        return self.transform(s) if self.transform else s
