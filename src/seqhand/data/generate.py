"""``seqhand generate``: the SeqHAND dataset - pose flows rendered into shards, in parallel.

Work is split into shards of ``shard_size`` sequences. Each shard is a pure function of the
configuration and its sequence indices: the flows of sequence ``i`` of a split come from
``(seed + split offset, i)``, its background, light and patch motion from
``SeedSequence((seed, split id, i))``. So the bytes do not depend on the number of workers or
on the engine (in-process, a Dask ``LocalCluster``, or a Dask scheduler on a cluster).

Shards are written atomically (a uniquely named temp file, then rename) and skipped when they
already exist, so a killed run resumes; ``manifest.json`` (config, seed, counts, per-shard
sha256) is written last, only when every shard is there. A folder without it is not a dataset
(readers refuse it).

Before the first shard the folder records the config in ``manifest.provisional.json``: a re-run
with another config is refused, naming the difference, so one folder never mixes two datasets.
One ``generate`` at a time writes a folder (an advisory lock on ``.seqhand-generate.lock``,
released by the system when the process ends, even by kill -9).
"""

from __future__ import annotations

import contextlib
import dataclasses
import fcntl
import functools
import hashlib
import json
import logging
import os
import shutil
import time
from pathlib import Path

from seqhand.data.shards import (
    SCHEMA,
    SCHEMA_VERSION,
    ShardError,
    encode_sample,
    sha256_file,
    shard_name,
    write_manifest,
    write_shard,
)
from seqhand.errors import SeqhandError
from seqhand.stages import StageTimes, stage

log = logging.getLogger(__name__)
SPLITS = ("train", "test")
_SPLIT_SEED_OFFSET = {"train": 0, "test": 1_000_003}
PROVISIONAL = "manifest.provisional.json"
LOCK = ".seqhand-generate.lock"
MAX_IMAGE_SIZE = 2048  # a 10-frame sequence at 2048 px is 126 MB of pixels per sample
MAX_FRAMES = 1000
SCHEDULER_TIMEOUT = "30s"  # how long to wait for a --scheduler to answer (Dask default)


@dataclasses.dataclass
class GenerateConfig:
    """Everything the dataset depends on (saved in the manifest).

    Attributes:
        num_train, num_test: sequences per split (paper: 40,000 / 1,000).
        frames: frames per sequence (paper: 10). image_size: frame side (paper: 224).
        seed: the dataset's seed. shard_size: sequences per shard.
        image_format: ``"jpg"`` (quality ``jpeg_quality``) or ``"png"`` (lossless).
        hand_model: ``None``/"builtin" or a MANO ``.npz``/``.pkl``.
        poses: a pose-bank ``.npz`` (``seqhand poses build``) or None for the built-in prior
            bank of ``bank_size`` poses (seed ``bank_seed``).
        backgrounds: a folder of images (e.g. VOC2012 JPEGImages) or None (procedural).
        templates: a folder of OBJ colour templates or None (``num_templates`` built-in).
        alpha: Eq. 6 update size (None: the flow module's default, recorded as its value).
        literal_flows: Eq. 7 as written (see :class:`seqhand.synth.flow.FlowConfig`).
        theta_source: ``"encoder"`` (the paper: joints -> theta MLP) or ``"bank"`` (the true
            parameters stored in a prior bank).
        encoder: a joints->theta encoder file (default: the shipped one of the built-in hand).
        supersample: anti-aliasing (1 = off, 2 = 2x2).
        with_vertices: also store mesh vertices per frame.
        views: the camera model of the flows, ``"authors"`` (their generator's views and
            update rates) or ``"seqhand"`` (see :mod:`seqhand.synth.flow`).
        ego_fraction: share of flows seen by the egocentric camera (both view modes).
        render_pose: ``"pca"`` renders theta rebuilt from its 10-component PCA code - the
            pose the network regresses, so targets are reachable - or ``"full"``, the
            encoder's full 45-d theta (the PCA code then misses it by ~3 mm per joint).
        hand_scale: with ``views="authors"``: ``"posed"`` (their rule: the hand's extent
            in the first and last frame, as posed and shaped, is 1 / U(1.7, 2.1) of the
            frame, so curled and small hands are drawn as large as open ones) or
            ``"nominal"`` (a fixed 0.2 m extent for every hand: datasets made before this option).
    """

    num_train: int = 200
    num_test: int = 40
    frames: int = 10
    image_size: int = 224
    seed: int = 0
    shard_size: int = 50
    image_format: str = "jpg"
    jpeg_quality: int = 95
    hand_model: str | None = None
    poses: str | None = None
    bank_size: int = 100_000
    bank_seed: int = 0
    backgrounds: str | None = None
    templates: str | None = None
    num_templates: int = 27
    alpha: float | None = None
    literal_flows: bool = False
    theta_source: str = "encoder"
    encoder: str | None = None
    supersample: int = 1
    with_vertices: bool = False
    views: str = "authors"
    ego_fraction: float = 0.2
    render_pose: str = "pca"
    hand_scale: str = "posed"

    def __post_init__(self) -> None:
        if self.alpha is None:  # record the value used (the manifest shows it)
            from seqhand.synth.flow import DEFAULT_ALPHA

            self.alpha = DEFAULT_ALPHA

    def validate(self) -> GenerateConfig:
        for f in dataclasses.fields(self):
            v = getattr(self, f.name)
            if isinstance(v, bool) and f.type in ("int", "float", "float | None"):
                raise SeqhandError(f"{f.name} must be a number, got {v!r}")
        if self.num_train < 0 or self.num_test < 0 or self.num_train + self.num_test == 0:
            raise SeqhandError("need at least one sequence (num_train + num_test > 0)")
        if not (1 <= self.frames <= MAX_FRAMES) or self.shard_size < 1:
            raise SeqhandError(f"frames must be 1..{MAX_FRAMES} and shard_size >= 1, got "
                               f"{self.frames} and {self.shard_size}")  # fmt: skip
        if not 16 <= self.image_size <= MAX_IMAGE_SIZE:
            raise SeqhandError(
                f"image_size must be 16..{MAX_IMAGE_SIZE} pixels, got {self.image_size}"
            )
        if self.seed < 0 or self.bank_seed < 0:
            raise SeqhandError(
                f"seeds must be >= 0, got seed {self.seed}, bank_seed {self.bank_seed}"
            )
        if self.bank_size < 1 or self.num_templates < 1 or self.supersample < 1:
            raise SeqhandError("bank_size, num_templates and supersample must be >= 1")
        if not 1 <= self.jpeg_quality <= 100:
            raise SeqhandError(f"jpeg_quality must be 1..100, got {self.jpeg_quality}")
        if self.alpha is not None and not 0 < self.alpha < 2 * self.frames:
            raise SeqhandError(f"alpha must be in (0, 2 x frames) = (0, {2 * self.frames}) for "
                               f"Eq. 6 to move toward P_final, got {self.alpha}")  # fmt: skip
        if self.image_format not in ("jpg", "png"):
            raise SeqhandError(f"image_format must be jpg or png, got {self.image_format!r}")
        if self.views not in ("authors", "seqhand"):
            raise SeqhandError(f"views must be authors or seqhand, got {self.views!r}")
        if self.render_pose not in ("pca", "full"):
            raise SeqhandError(f"render_pose must be pca or full, got {self.render_pose!r}")
        if self.hand_scale not in ("posed", "nominal"):
            raise SeqhandError(f"hand_scale must be posed or nominal, got {self.hand_scale!r}")
        if not 0.0 <= self.ego_fraction <= 1.0:
            raise SeqhandError(f"ego_fraction must be in [0, 1], got {self.ego_fraction}")
        if self.theta_source not in ("encoder", "bank"):
            raise SeqhandError(f"theta_source must be encoder or bank, got {self.theta_source!r}")
        for name in ("poses", "backgrounds", "templates", "hand_model", "encoder"):
            v = getattr(self, name)
            if v not in (None, "builtin") and not Path(v).exists():
                raise SeqhandError(f"--{name.replace('_', '-')} {v}: no such file or folder")
        if self.poses:
            _check_bank_file(Path(self.poses))
        return self

    def key(self) -> str:
        """A digest of everything that changes the bytes (worker caches use it)."""
        return hashlib.sha256(json.dumps(dataclasses.asdict(self), sort_keys=True).encode()
                              ).hexdigest()[:16]  # fmt: skip


def _check_bank_file(path: Path) -> None:
    """A pose bank is an ``.npz`` with ``joints`` and ``meta`` (checked without loading it)."""
    import zipfile

    try:
        with zipfile.ZipFile(path) as z:
            names = set(z.namelist())
    except (zipfile.BadZipFile, OSError) as e:
        raise SeqhandError(
            f"--poses {path}: not a pose bank .npz ({e}); make one with `seqhand poses build "
            "--source array --input FILE`"
        ) from None
    if not {"joints.npy", "meta.npy"} <= names:
        raise SeqhandError(f"--poses {path}: not a pose bank (arrays {sorted(names)}; expected "
                           "joints and meta from `seqhand poses build`)")  # fmt: skip


PRESETS: dict[str, dict] = {
    # the paper's dataset (section 5): 40,000 + 1,000 sequences of 10 frames at 224 x 224
    "paper": {"num_train": 40_000, "num_test": 1_000, "frames": 10, "image_size": 224,
              "shard_size": 100, "bank_size": 1_000_000},
    # a small dataset for trying things out on a laptop
    "small": {"num_train": 200, "num_test": 40, "frames": 10, "image_size": 224},
    # what make demo trains on (CPU minutes): frames at the tiny model's input size (no resize
    # when training) so that more sequences fit the same generation time - the demo's model
    # generalises better with 2,000 sequences than with 480 (docs/results.md)
    "demo": {"num_train": 2000, "num_test": 48, "frames": 8, "image_size": 96,
             "shard_size": 100, "bank_size": 50_000},
}  # fmt: skip


def preset(name: str, **overrides) -> GenerateConfig:
    """A named preset with overrides (GenerateConfig fields; ``num_sequences`` is accepted for
    ``num_train``, as the CLI's ``--num-sequences``)."""
    if "num_sequences" in overrides:
        n = overrides.pop("num_sequences")
        if overrides.get("num_train") is not None and n is not None:
            raise SeqhandError("give num_sequences or num_train, not both")
        overrides["num_train"] = overrides.get("num_train") if n is None else n
    if name not in PRESETS:
        raise SeqhandError(f"unknown preset {name!r}; presets: {sorted(PRESETS)}")
    fields = {**PRESETS[name], **{k: v for k, v in overrides.items() if v is not None}}
    return GenerateConfig(**fields)


# ------------------------------------------------------------------------------------------
# Per-process context (bank, NN index, encoder, hand layer, templates, backgrounds)
# ------------------------------------------------------------------------------------------
def bank_path(cfg: GenerateConfig, out: Path) -> Path:
    """Where the run's pose bank lives: the given file, or the built-in prior bank cached in
    ``out/.cache`` (built once by the driver, loaded by every worker)."""
    if cfg.poses:
        return Path(cfg.poses)
    hand = "builtin" if cfg.hand_model in (None, "builtin") else Path(cfg.hand_model).stem
    return out / ".cache" / f"prior-bank-{hand}-{cfg.bank_size}-{cfg.bank_seed}.npz"


def index_path(bank_file: str | Path) -> Path:
    """Where the search index of a pose bank is cached: next to it, ``BANK.npz.pca-tree``."""
    p = Path(bank_file)
    return p.with_name(p.name + ".pca-tree")


def bank_and_index(bank_file: str | Path):
    """The pose bank (memory-mapped) and its search index (cached next to it, built if missing
    or stale: see :func:`seqhand.synth.nn.cached_nn`)."""
    from seqhand.synth.bank import load_bank
    from seqhand.synth.nn import cached_nn

    bank = load_bank(bank_file, mmap=True)
    return bank, cached_nn(bank.flat, index_path(bank_file))


def ensure_bank(cfg: GenerateConfig, out: Path, progress: bool = False) -> Path:
    """The run's pose bank file, and its search index cached next to it: built here once,
    so that workers only load both."""
    import numba
    import torch

    from seqhand.synth.bank import bank_from_prior

    p = bank_path(cfg, out)
    if not p.is_file():
        log.info("building the built-in prior pose bank (%d poses) -> %s", cfg.bank_size, p)
        p.parent.mkdir(parents=True, exist_ok=True)
        bank_from_prior(cfg.hand_model, cfg.bank_size, cfg.bank_seed, progress=progress).save(p)
    # one numba thread: this process may compose next (see _one_core); torch's count is kept
    torch_threads, numba_threads = torch.get_num_threads(), numba.get_num_threads()
    numba.set_num_threads(1)
    torch.set_num_threads(torch_threads)
    try:
        bank_and_index(p)
    finally:
        numba.set_num_threads(numba_threads)
    return p


def _one_core() -> None:
    """One process = one core, for numba and torch alike. Order matters: numba's first
    ``set_num_threads`` launches its OpenMP layer, which raises the OpenMP thread count that
    torch's parallel regions then use; each torch op ran in a 2-thread team whose second thread
    busy-waits between ops (the hand layer and encoder were 2-4x slower, beside a second busy
    core: the "slower after building the bank" of the stage profile). So torch's count is set
    after numba's launch."""
    import numba
    import torch

    numba.set_num_threads(1)
    torch.set_num_threads(1)


@functools.lru_cache(maxsize=2)
def _context(cfg_json: str, bank_file: str):

    from seqhand.hand import HandLayer, load_asset
    from seqhand.synth.appearance import TemplateSet
    from seqhand.synth.backgrounds import CACHE_BYTES, load_backgrounds
    from seqhand.synth.compose import Composer
    from seqhand.synth.flow import FlowConfig

    _one_core()
    cfg = GenerateConfig(**json.loads(cfg_json))
    asset = load_asset(cfg.hand_model)
    bank, nn = bank_and_index(bank_file)
    layer = HandLayer(asset, pose_origin="flat")
    if cfg.theta_source == "bank":
        if bank.poses is None:
            raise SeqhandError(f"{bank_file}: theta_source=bank needs a prior bank with poses")
        encoder = None
    else:
        from seqhand.synth.encoder import load_builtin_encoder, load_encoder

        if cfg.encoder:
            encoder = load_encoder(cfg.encoder)[0]
        elif asset.name == "builtin":
            encoder = load_builtin_encoder()[0]
        else:
            raise SeqhandError(
                f"hand model {asset.name!r} needs a joints->theta encoder: train one with "
                "`seqhand poses fit-encoder BANK --hand-model ... --out ENC.pt` and pass "
                "--encoder ENC.pt (or use --theta-source bank with a prior bank)"
            )
    templates = (TemplateSet.from_folder(cfg.templates, asset) if cfg.templates
                 else TemplateSet.builtin(asset, cfg.num_templates))  # fmt: skip
    # images drawn again by this process (a long run, online training) come from memory
    backgrounds = load_backgrounds(cfg.backgrounds, seed=cfg.seed, cache_bytes=CACHE_BYTES)
    flow_cfg = FlowConfig(n_frames=cfg.frames, **({"alpha": cfg.alpha} if cfg.alpha else {}),
                          image_size=224, ego_fraction=cfg.ego_fraction,
                          literal=cfg.literal_flows, views=cfg.views,
                          num_templates=len(templates))  # fmt: skip
    composer = Composer(layer=layer, encoder=encoder, templates=templates,
                        backgrounds=backgrounds, image_size=cfg.image_size,
                        supersample=cfg.supersample, with_vertices=cfg.with_vertices,
                        render_pca=cfg.render_pose == "pca",
                        posed_extent=flow_cfg.hand_extent
                        if cfg.views == "authors" and cfg.hand_scale == "posed" else None)  # fmt: skip
    return cfg, bank, nn, flow_cfg, composer


def make_samples(cfg: GenerateConfig, bank_file: str | Path, split: str, start: int,
                 count: int, times: StageTimes | None = None) -> list[dict]:  # fmt: skip
    """Compose sequences ``start .. start+count-1`` of ``split`` (no I/O besides reading the
    bank): the unit of work of every engine. ``times`` (optional) accumulates the seconds per
    stage (flows, then the composer's stages)."""
    from seqhand.synth.compose import plans_from_flows
    from seqhand.synth.flow import generate_flows

    cfg, bank, nn, flow_cfg, composer = _context(
        json.dumps(dataclasses.asdict(cfg), sort_keys=True), str(bank_file)
    )
    with stage(times, "flows"):
        flows = generate_flows(bank, nn, cfg.seed + _SPLIT_SEED_OFFSET[split], start, count,
                               flow_cfg)  # fmt: skip
        plans = plans_from_flows(flows, bank, (cfg.seed, SPLITS.index(split)),
                                 len(composer.backgrounds),
                                 use_bank_poses=cfg.theta_source == "bank")  # fmt: skip
    samples = composer.compose(plans, times)
    for s, i in zip(samples, range(start, start + count)):
        s["meta"].update({"key": f"{split}-{i:07d}", "split": split, "seed": cfg.seed})
    return samples


def run_shard(cfg: GenerateConfig, out: str, bank_file: str, split: str, shard: int,
              start: int, count: int, times: StageTimes | None = None) -> dict:  # fmt: skip
    """Make and write one shard (skipped if it exists). Returns its manifest entry.
    ``times``: as in :func:`make_samples`, plus ``encode`` and ``write``."""
    path = Path(out) / shard_name(split, shard)
    if not path.is_file():
        samples = make_samples(cfg, bank_file, split, start, count, times)
        with stage(times, "encode"):
            enc = [(s["meta"]["key"], encode_sample(s, cfg.image_format, cfg.jpeg_quality))
                   for s in samples]  # fmt: skip
        with stage(times, "write"):
            write_shard(path, enc)
    return {"name": path.name, "sha256": sha256_file(path), "count": count, "first": start}


def shard_tasks(cfg: GenerateConfig) -> list[tuple[str, int, int, int]]:
    tasks = []
    for split, n in (("train", cfg.num_train), ("test", cfg.num_test)):
        for k, lo in enumerate(range(0, n, cfg.shard_size)):
            tasks.append((split, k, lo, min(cfg.shard_size, n - lo)))
    return tasks


LEGACY_DEFAULTS = {"hand_scale": "nominal"}
"""What a config written before a field existed meant by its absence."""


def config_difference(old: dict, new: dict) -> list[str]:
    """``["seed: 0 in the folder, 7 asked", ...]`` for the fields that differ."""
    out = []
    for k in sorted(set(old) | set(new)):
        a = old.get(k, LEGACY_DEFAULTS.get(k, "(absent)"))
        b = new.get(k, LEGACY_DEFAULTS.get(k, "(absent)"))
        if a != b:
            out.append(f"{k}: {a!r} in the folder, {b!r} asked")
    return out


def _refuse_other_config(out: Path, what: str, old: dict | None, new: dict) -> None:
    diff = config_difference(old or {}, new) if isinstance(old, dict) else ["(unreadable)"]
    if diff:
        shown = "; ".join(diff[:4]) + (f"; and {len(diff) - 4} more" if len(diff) > 4 else "")
        raise SeqhandError(
            f"{out} already holds {what} made with another config ({shown}); re-run with the same "
            "options to resume, or choose another --out"
        )


@contextlib.contextmanager
def writer_lock(out: Path):
    """Hold ``out/.seqhand-generate.lock`` (one writer at a time) for the ``with`` block."""
    path = out / LOCK
    fh = open(path, "a+")
    try:
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            fh.seek(0)
            pid = fh.read().strip() or "?"
            raise SeqhandError(
                f"{out} is being written by another `seqhand generate` (pid {pid}); wait for "
                "it to finish or choose another --out"
            ) from None
        fh.seek(0)
        fh.truncate()
        fh.write(str(os.getpid()))
        fh.flush()
        yield
    finally:
        fh.close()


def _read_json(path: Path) -> dict | None:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def _check_writable(out: Path) -> None:
    try:
        out.mkdir(parents=True, exist_ok=True)
        probe = out / ".write-test"
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as e:
        raise SeqhandError(f"{out}: output folder is not writable ({e.strerror})") from None


def generate(cfg: GenerateConfig, out: str | os.PathLike, *, workers: int = 1,
             scheduler: str | None = None, progress: bool = True,
             timeline: dict | None = None) -> dict:  # fmt: skip
    """Generate the dataset into ``out`` and return the manifest.

    Args:
        workers: 1 = in this process; N > 1 = a Dask ``LocalCluster`` of N single-threaded
            worker processes.
        scheduler: address of an existing Dask scheduler (``tcp://host:8786``); overrides
            ``workers``.
        timeline: if a dict, filled with where the time went (``benchmarks/generate.py``):
            ``engine_start`` / ``engine_close`` (s), and ``shards`` - per shard made, the
            process id and the start and end of its work (``time.time()``).
    """
    cfg.validate()
    out = Path(out)
    _check_writable(out)
    with writer_lock(out):
        return _generate_locked(cfg, out, workers, scheduler, progress, timeline)


def _timed_shard(*args) -> tuple[dict, tuple[int, float, float]]:
    """:func:`run_shard` and (process id, start, end) of its work."""
    t0 = time.time()
    entry = run_shard(*args)
    return entry, (os.getpid(), t0, time.time())


def _generate_locked(cfg: GenerateConfig, out: Path, workers: int, scheduler: str | None,
                     progress: bool, timeline: dict | None = None) -> dict:  # fmt: skip
    from tqdm.auto import tqdm

    want = dataclasses.asdict(cfg)
    existing = out / "manifest.json"
    if existing.is_file():
        old = _read_json(existing)
        _refuse_other_config(out, "a different dataset", (old or {}).get("config"), want)
        return old
    provisional = out / PROVISIONAL
    shards_there = any(out.glob("*.tar"))
    if provisional.is_file() and shards_there:
        _refuse_other_config(out, "an unfinished, different dataset",
                             (_read_json(provisional) or {}).get("config"), want)  # fmt: skip
    else:  # no shard yet (e.g. a run that stopped on a bad option): nothing can mix
        strays = sorted(p.name for p in out.glob("*.tar"))
        if strays:
            raise SeqhandError(
                f"{out} holds shards ({strays[0]}, ...) but no record of the config that made "
                "them; choose another --out (or delete them)"
            )
        write_manifest(out, {"format": "seqhand-dataset-provisional",
                             "schema_version": SCHEMA_VERSION, "config": want},
                       name=PROVISIONAL)  # fmt: skip
    # temp files of killed runs (and of the search index cached with the prior bank)
    for stale in [*out.glob(".*.tmp"), *out.glob("*.tar.tmp"), *out.glob(".cache/.*.tmp")]:
        if stale.is_dir():
            shutil.rmtree(stale, ignore_errors=True)
        else:
            stale.unlink(missing_ok=True)
    t0 = time.time()
    bank_file = str(ensure_bank(cfg, out, progress))
    tasks = shard_tasks(cfg)
    done = {}
    bar = tqdm(total=sum(t[3] for t in tasks), unit="seq", desc="generate", disable=not progress)
    shards_timed, t_start = [], time.time()
    if scheduler is None and workers <= 1:
        for split, k, lo, n in tasks:
            done[(split, k)], when = _timed_shard(cfg, str(out), bank_file, split, k, lo, n)
            shards_timed.append(when)
            bar.update(n)
        t_close = time.time()
    else:
        from dask.distributed import Client, LocalCluster, as_completed

        cluster = None
        if scheduler is None:
            cluster = LocalCluster(n_workers=workers, threads_per_worker=1, processes=True,
                                   dashboard_address=None, silence_logs=logging.ERROR)  # fmt: skip
        try:
            client = Client(scheduler or cluster, timeout=SCHEDULER_TIMEOUT)
        except (OSError, TimeoutError, ValueError, TypeError) as e:
            if cluster is not None:
                cluster.close()
            raise SeqhandError(
                f"--scheduler {scheduler}: no Dask scheduler answered ({type(e).__name__}: "
                f"{' '.join(str(e).split())[:160]})"
            ) from None
        try:
            futs = {client.submit(_timed_shard, cfg, str(out), bank_file, *t, pure=False): t
                    for t in tasks}  # fmt: skip
            for fut in as_completed(futs):
                split, k, lo, n = futs[fut]
                done[(split, k)], when = fut.result()
                shards_timed.append(when)
                bar.update(n)
        finally:
            t_close = time.time()
            client.close()
            if cluster is not None:
                cluster.close()
    bar.close()
    if timeline is not None:
        first = min((w[1] for w in shards_timed), default=t_close)
        timeline.update(engine_start=first - t_start, engine_close=time.time() - t_close,
                        shards=shards_timed)  # fmt: skip
    splits = {}
    for split, n in (("train", cfg.num_train), ("test", cfg.num_test)):
        shards = [done[(s, k)] for (s, k, _, _) in tasks if s == split]
        if n:
            splits[split] = {"num_sequences": n, "shards": shards}
    if sum(len(s["shards"]) for s in splits.values()) != len(tasks):
        raise ShardError(f"{out}: some shards are missing; run the same command again to resume")
    manifest = {
        "format": "seqhand-dataset",
        "schema_version": SCHEMA_VERSION,
        "schema": SCHEMA,
        "config": dataclasses.asdict(cfg),
        "seed": cfg.seed,
        "frames": cfg.frames,
        "image_size": cfg.image_size,
        "bank": {"file": os.path.relpath(bank_file, out), "sha256": sha256_file(Path(bank_file))},
        "splits": splits,
    }
    write_manifest(out, manifest)  # deterministic: no timestamps, so re-runs give equal bytes
    log.info("generated %s in %.1f s", out, time.time() - t0)
    return manifest
