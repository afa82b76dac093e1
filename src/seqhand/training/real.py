"""Synthetic-to-real fine-tuning (paper section 4, Eq. 15): real images as one-frame sequences.

:class:`RealTrainItems` turns each :class:`~seqhand.data.RealSample` of a real training set
(FreiHAND, STB, RHD) into a one-frame training item with the keys of
:mod:`seqhand.training.batch` (``T = 1``), and :func:`finetune` runs
:func:`seqhand.training.run.train` on them, starting from a pre-trained model, with the
recurrent layer frozen (the paper's ``Train_C``) or not (``Train``).

**Crops.** As at test time (section 5, "Hand Localizations"): a square of ``2.2 x`` the longer
side of the tight box of the valid ground-truth 2D joints, centred on the box
(:class:`seqhand.geometry.crop.CropTransform`), resized to ``image_size``. Crop pixels outside
the image take the image's mean grey.

**Re-positioning** (section 5: FreiHAND's hands are centred, so the paper "re-positions the hand
randomly within the image"): the crop window is rescaled by ``u ~ U(scale_range)`` and its centre
moved by ``d ~ U(-a, a)`` per axis with ``a = shift * (L - e) / 2`` (``L`` the crop side, ``e``
the joint box's extent on that axis), so the joint box stays inside the crop (``shift <= 1``)
while the hand lands anywhere in it. The draw is a pure function of ``(rng_seed, dataset
index)`` - each sample is re-positioned once, the same way in every epoch, on every rank and
worker and after a resume (the paper "modified each sample"); FreiHAND's four versions of an
annotation are four indices, so an annotation gets four placements.

**Targets** (Eq. 15 = 2D + 3D + mask + temporal; no camera/parameter targets): ``joints2d`` in
crop pixels (``joints2d_valid`` = annotated and inside the crop), ``joints3d`` in metres in the
camera frame (the loss makes them root-relative), ``vertices3d`` where the dataset has them and
the hand model has their topology (FreiHAND with MANO's 778 vertices), and ``mask`` /
``mask_dist`` / ``mask_valid`` where the dataset has masks (FreiHAND, RHD). Items of a mixed set
(``freihand+stb``) all carry the same keys: a sample without a mask or vertices gets zeros and
``*_valid = False``, so its term is skipped.

**STB's palm root.** STB's slot 0 is the palm centre, but the network predicts a wrist and the
loss subtracts slot 0 as the root. We turn the label into a wrist with
:func:`seqhand.data.stb.wrist_from_palm` (``wrist = ringMCP + 2 (palm - ringMCP)``, hand3d's
``use_wrist_coord``) in 3D and project it with the sample's intrinsics for 2D. It is the exact
inverse of the palm the evaluator predicts (:func:`seqhand.data.stb.palm_from_joints`), so
training and STB evaluation use one relation.
"""

from __future__ import annotations

import copy
import logging
import math
import os
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import ConcatDataset, Dataset, Subset

from seqhand.config import merge
from seqhand.conventions import CROP_FACTOR
from seqhand.data.types import RealSample, project
from seqhand.errors import SeqhandError
from seqhand.geometry.crop import Box, CropTransform
from seqhand.losses import mask_distance_map
from seqhand.models import normalize_frames

log = logging.getLogger(__name__)

FINETUNE_DATASETS = ("freihand", "stb", "rhd")
FINETUNE_DEFAULTS: dict = {
    "freeze_recurrent": True,
    "reposition": ["freihand"],  # datasets whose crops are re-positioned (paper: FreiHAND)
    "shift": 0.8,  # fraction of the free room the hand box may move (<= 1 keeps it in the crop)
    "scale_range": [0.9, 1.1],  # crop side x U(lo, hi)
    "val_fraction": 0.02,  # held-out share of annotation groups
    "val_block": 100,  # sequential sets: held-out groups are blocks of this many frames
    "freihand_versions": "all",  # the paper's 130,240 images
    "stb_camera": "BB",
    "load_vertices": "auto",  # FreiHAND verts when the hand model has 778 vertices
}


class FinetuneError(SeqhandError):
    """Fine-tuning cannot start as configured (unknown dataset, unusable checkpoint)."""


# ------------------------------------------------------------------------------------------
# One sample -> one crop
# ------------------------------------------------------------------------------------------
def wrist_rooted(sample: RealSample) -> tuple[np.ndarray, np.ndarray]:
    """``(joints3d (21, 3) m, joints2d (21, 2) px)`` of ``sample`` with slot 0 a wrist.

    STB's palm (``root_kind="palm"``) becomes :func:`~seqhand.data.stb.wrist_from_palm`'s
    wrist; its 2D point is the projection with ``sample.K`` (or the same 2D relation when
    there are no intrinsics). Other samples are returned as they are (copies).
    """
    from seqhand.data.stb import wrist_from_palm

    j3 = np.array(sample.joints3d, dtype=np.float64, copy=True)
    j2 = np.array(sample.joints2d, dtype=np.float64, copy=True)
    if sample.root_kind == "palm":
        j3 = wrist_from_palm(j3)
        if sample.K is not None:
            j2[0] = project(j3[:1], sample.K)[0]
        else:
            j2 = wrist_from_palm(np.concatenate([j2, np.zeros((21, 1))], 1))[:, :2]
    return j3, j2


def joint_box(joints2d: np.ndarray, valid: np.ndarray) -> Box:
    """The tight box of the valid, finite 2D joints."""
    pts = np.asarray(joints2d, dtype=np.float64)[np.asarray(valid, dtype=bool)]
    return Box.from_points(pts)


def training_crop(
    box: Box,
    image_size: int,
    rng: np.random.Generator | None = None,
    *,
    shift: float = 0.8,
    scale_range: tuple[float, float] = (0.9, 1.1),
    factor: float = CROP_FACTOR,
) -> CropTransform:
    """The centred crop of ``box`` (``rng=None``) or a re-positioned one (module docstring).

    Returns a :class:`CropTransform` of side ``factor * box.longer_side * u`` whose centre is
    the box centre moved by up to ``shift * (L - extent) / 2`` per axis.
    """
    centred = CropTransform.from_box(box, image_size, factor)
    if rng is None:
        return centred
    lo, hi = (float(v) for v in scale_range)
    side = centred.side * float(rng.uniform(lo, hi))
    room = np.maximum(side - np.array([box.width, box.height]), 0.0) / 2.0
    dx, dy = rng.uniform(-1.0, 1.0, size=2) * float(shift) * room
    cx, cy = box.center
    return CropTransform(cx + float(dx), cy + float(dy), side, int(image_size))


class RealTrainItems(Dataset):
    """A real dataset as one-frame training items (keys of :mod:`seqhand.training.batch`).

    Args:
        dataset: a map-style dataset of :class:`~seqhand.data.RealSample` (FreiHAND, STB, RHD).
        image_size: side ``S`` of the square model input, pixels.
        rng_seed: seed of the re-positioning draws (one per ``(rng_seed, dataset index)``).
        reposition: re-position the hand in the crop (else centred crops).
        indices: the dataset indices to use (a train/val split); default all.
        shift, scale_range: the re-positioning ranges (module docstring).
        with_mask: emit ``mask``/``mask_dist``/``mask_valid`` (zeros + invalid for samples
            without a mask); default: whether the first sample has a mask.
        num_vertices: emit ``vertices3d (1, V, 3)``/``vertices3d_valid`` for ``V`` vertices
            (samples whose ``verts3d`` is missing or of another size are invalid); ``None``:
            no vertex targets.

    Item shapes (``T = 1``): ``frames (1, 3, S, S)`` ImageNet-normalised, ``joints2d (1, 21, 2)``
    crop pixels, ``joints3d (1, 21, 3)`` metres camera frame, ``vertices3d (1, V, 3)``,
    ``mask (1, S, S)`` bool, ``mask_dist (1, S, S)``, ``*_valid``, ``frames_valid (1,)``.
    """

    def __init__(
        self,
        dataset,
        image_size: int,
        rng_seed: int = 0,
        reposition: bool = True,
        *,
        indices=None,
        shift: float = 0.8,
        scale_range: tuple[float, float] = (0.9, 1.1),
        with_mask: bool | None = None,
        num_vertices: int | None = None,
    ) -> None:
        self.dataset = dataset
        self.image_size = int(image_size)
        self.rng_seed = int(rng_seed)
        self.reposition = bool(reposition)
        self.indices = np.arange(len(dataset)) if indices is None else np.asarray(indices, int)
        self.shift, self.scale_range = float(shift), tuple(scale_range)
        if with_mask is None:
            with_mask = len(self.indices) > 0 and dataset[int(self.indices[0])].mask is not None
        self.with_mask = bool(with_mask)
        self.num_vertices = num_vertices

    def __len__(self) -> int:
        return len(self.indices)

    def crop_for(self, sample: RealSample, joints2d: np.ndarray) -> CropTransform:
        """The crop of ``sample`` (re-positioned by the ``(rng_seed, sample.index)`` draw)."""
        valid = sample.joint_valid & np.isfinite(joints2d).all(-1)
        box = joint_box(joints2d, valid)
        rng = np.random.default_rng([self.rng_seed, int(sample.index)]) if self.reposition else None
        return training_crop(box, self.image_size, rng, shift=self.shift,
                             scale_range=self.scale_range)  # fmt: skip

    def prepare(self, i: int) -> dict:
        """Item ``i`` as numpy: ``image (S, S, 3)`` uint8, ``joints2d (21, 2)`` crop px,
        ``joints2d_valid``, ``joints3d (21, 3)`` m, ``joints3d_valid``, ``mask (S, S)`` or None,
        ``vertices3d`` or None, ``crop`` (the :class:`CropTransform`), ``sample``."""
        sample = self.dataset[int(self.indices[i])]
        if sample.joints3d is None or sample.joints2d is None:
            raise FinetuneError(
                f"{sample.image_path}: {sample.dataset} sample {sample.index} has no 3D/2D "
                "joint labels; fine-tuning needs a labelled split"
            )
        j3, j2 = wrist_rooted(sample)
        crop = self.crop_for(sample, j2)
        pad = float(sample.image.mean())
        image = crop.crop_image(sample.image, pad_value=pad)
        c2 = crop.to_crop(j2)
        s = self.image_size
        inside = ((c2 >= -0.5) & (c2 <= s - 0.5)).all(-1)
        mask = None
        if sample.mask is not None:
            mask = crop.crop_image(sample.mask.astype(np.float32), pad_value=0.0) > 0.5
        return {
            "image": image,
            "joints2d": c2,
            "joints2d_valid": sample.joint_valid & inside,
            "joints3d": j3,
            "joints3d_valid": sample.joint_valid.copy(),
            "mask": mask,
            "vertices3d": sample.verts3d,
            "crop": crop,
            "sample": sample,
        }

    def __getitem__(self, i: int) -> dict:
        p = self.prepare(i)
        s = self.image_size
        img = torch.from_numpy(np.ascontiguousarray(p["image"])).permute(2, 0, 1)[None]
        item = {
            "frames": normalize_frames(img.float() / 255.0),
            "joints2d": torch.from_numpy(p["joints2d"]).float()[None],
            "joints2d_valid": torch.from_numpy(p["joints2d_valid"])[None],
            "joints3d": torch.from_numpy(p["joints3d"]).float()[None],
            "joints3d_valid": torch.from_numpy(p["joints3d_valid"])[None],
            "frames_valid": torch.ones(1, dtype=torch.bool),
        }
        if self.num_vertices is not None:
            v = p["vertices3d"]
            ok = v is not None and v.shape == (self.num_vertices, 3)
            verts = v if ok else np.zeros((self.num_vertices, 3))
            item["vertices3d"] = torch.from_numpy(np.asarray(verts)).float()[None]
            item["vertices3d_valid"] = torch.tensor([ok])
        if self.with_mask:
            m = p["mask"] if p["mask"] is not None else np.zeros((s, s), dtype=bool)
            item["mask"] = torch.from_numpy(m)[None]
            item["mask_dist"] = torch.from_numpy(mask_distance_map(m).astype(np.float32))[None]
            item["mask_valid"] = torch.tensor([bool(m.any())])
        return item


# ------------------------------------------------------------------------------------------
# Datasets and the train / validation split
# ------------------------------------------------------------------------------------------
def split_indices(dataset, val_fraction: float, seed: int = 0,
                  block: int = 100) -> tuple[np.ndarray, np.ndarray]:  # fmt: skip
    """Hold out a deterministic share of *groups* of a real dataset for validation.

    Groups keep near-duplicates on one side: FreiHAND's four versions of an annotation form a
    group; a sequential set (STB) is cut into blocks of ``block`` consecutive frames; any other
    sample is its own group. Returns ``(train_indices, val_indices)``; the validation indices
    are shuffled (so the first ``data.val_sequences`` of them are a random subset). At least one
    group goes to each side when there are two or more groups.
    """
    n = len(dataset)
    if getattr(dataset, "name", "") == "freihand":
        groups = np.arange(n) % dataset.num_unique
    elif getattr(dataset, "sequential", False):
        groups = np.empty(n, dtype=np.int64)
        g = 0
        for _, idx in dataset.sequences():
            for k in range(0, len(idx), block):
                groups[idx[k : k + block]] = g
                g += 1
    else:
        groups = np.arange(n)
    uniq = np.unique(groups)
    rng = np.random.default_rng([int(seed), 7])
    n_val = int(math.ceil(val_fraction * len(uniq))) if val_fraction > 0 else 0
    if len(uniq) >= 2:
        n_val = min(max(n_val, 1 if val_fraction > 0 else 0), len(uniq) - 1)
    else:
        n_val = 0
    val_groups = rng.permutation(uniq)[:n_val]
    is_val = np.isin(groups, val_groups)
    train_idx = np.flatnonzero(~is_val)
    val_idx = rng.permutation(np.flatnonzero(is_val))
    return train_idx, val_idx


def parse_datasets(spec: str) -> list[str]:
    """``"freihand+stb"`` -> ``["freihand", "stb"]`` (checked against FINETUNE_DATASETS)."""
    names = [s.strip().lower() for s in str(spec).split("+") if s.strip()]
    bad = [s for s in names if s not in FINETUNE_DATASETS]
    if not names or bad or len(set(names)) != len(names):
        raise FinetuneError(
            f"fine-tuning dataset {spec!r}: expected one or more of {FINETUNE_DATASETS} joined "
            "by '+' (e.g. freihand+stb)"
        )
    return names


def _dataset_root(name: str, data_root, several: bool):
    """A single dataset: ``data_root`` is its folder; several: the ``$SEQHAND_DATA``-style
    parent holding each under its default name (``FreiHAND/``, ``STB/``...)."""
    if data_root is None:
        return None
    if not several:
        return data_root
    from seqhand.data.roots import DEFAULT_DIRNAMES

    return Path(data_root) / DEFAULT_DIRNAMES[name]


def load_training_dataset(name: str, root, ft: dict, num_vertices: int):
    """The training split of a real dataset, as configured in the ``finetune`` section."""
    from seqhand.data import RHD, STB, FreiHAND

    if name == "freihand":
        lv = ft.get("load_vertices", "auto")
        load_verts = num_vertices == 778 if lv == "auto" else bool(lv)
        return FreiHAND(root, "training", versions=ft.get("freihand_versions", "all"),
                        load_verts=load_verts)  # fmt: skip
    if name == "stb":
        return STB(root, "train", camera=ft.get("stb_camera", "BB"))
    return RHD(root, "training")


# ------------------------------------------------------------------------------------------
# finetune
# ------------------------------------------------------------------------------------------
def finetune(
    cfg: dict,
    out_dir: str | os.PathLike,
    *,
    checkpoint: str | os.PathLike,
    dataset: str,
    data_root: str | os.PathLike | None = None,
    freeze_recurrent: bool = True,
    resume: str | None = None,
    devices: int | None = None,
    num_nodes: int | None = None,
    progress: bool = True,
) -> dict:
    """Fine-tune a pre-trained model on real images (Eq. 15); returns the run's summary.

    Args:
        cfg: resolved config (optim, loss, trainer, data.batch_size/num_workers/val_sequences
            and an optional ``finetune`` section overriding :data:`FINETUNE_DEFAULTS`). The
            ``model`` section is replaced by the checkpoint's model (name, kwargs, image size,
            hand model): fine-tuning continues that network.
        out_dir: run folder (as :func:`seqhand.training.run.train`).
        checkpoint: the pre-trained model (``model.pt`` or a training ``.ckpt``).
        dataset: ``freihand``, ``stb``, ``rhd`` or a ``+``-joined mix (``freihand+stb``, the
            paper's FH + STB).
        data_root: the dataset folder (one dataset) or the folder holding each under its
            default name (several); default ``$SEQHAND_DATA``.
        freeze_recurrent: ``Train_C`` - the recurrent layer gets no gradient and no optimiser
            update (its weights stay bit-identical); False: ``Train``, every layer learns.
        resume, devices, num_nodes, progress: as :func:`seqhand.training.run.train`.
    """
    from seqhand.hand.layer import HandLayer
    from seqhand.training.checkpoint import load_model
    from seqhand.training.run import train

    names = parse_datasets(dataset)
    model, rec = load_model(checkpoint)
    cfg = copy.deepcopy(cfg)
    cfg["model"] = checkpoint_model_section(cfg.get("model") or {}, rec)
    ft = merge(FINETUNE_DEFAULTS, cfg.get("finetune") or {})
    ft["freeze_recurrent"] = bool(freeze_recurrent)
    ft["dataset"] = "+".join(names)
    ft["data_root"] = None if data_root is None else str(data_root)
    ft["checkpoint"] = str(checkpoint)
    cfg["finetune"] = ft
    for k in ("root", "train_split", "val_split"):  # the SeqHAND shards are not used here
        cfg.setdefault("data", {}).pop(k, None)
    if freeze_recurrent and not model.recurrent_parameters():
        log.warning("%s has no recurrent layer: Train_C is the same as Train", cfg["model"]["name"])
    hand = HandLayer(cfg["model"]["hand_model"], pose_origin="mean")
    train_set, val_set = build_finetune_sets(
        names, data_root, ft, cfg["model"]["image_size"], int(hand.v_template.shape[0]),
        seed=int(cfg.get("trainer", {}).get("seed", 0)),
    )  # fmt: skip
    return train(
        cfg, out_dir, resume=resume, init_checkpoint=str(checkpoint), train_set=train_set,
        val_set=val_set, devices=devices, num_nodes=num_nodes, progress=progress,
    )  # fmt: skip


def checkpoint_model_section(model_cfg: dict, record: dict) -> dict:
    """The config's ``model`` section rewritten to the checkpoint's model (fine-tuning continues
    that network: same name, kwargs, input size and hand model)."""
    spec = dict(record["model_spec"])
    name, size = spec.pop("name"), int(record["image_size"])
    if model_cfg.get("name") not in (None, name) or model_cfg.get("image_size") not in (None, size):
        log.info(
            "fine-tuning continues the checkpoint's model %s at %d px (the config said %s at %s)",
            name, size, model_cfg.get("name"), model_cfg.get("image_size"),
        )  # fmt: skip
    hand = record.get("hand_model") or "builtin"
    out = dict(model_cfg)
    out.update(name=name, kwargs=spec, image_size=size, backbone_weights=None,
               hand_model=None if hand == "builtin" else hand)  # fmt: skip
    return out


def build_finetune_sets(names: list[str], data_root, ft: dict, image_size: int,
                        hand_vertices: int, seed: int = 0):  # fmt: skip
    """The training and validation item sets of :func:`finetune` -> ``(train_set, val_set)``.

    Each dataset is split by :func:`split_indices`; training items are re-positioned for the
    datasets named in ``ft["reposition"]``; validation items use centred crops. Several datasets
    are concatenated (the validation set shuffled, so ``data.val_sequences`` samples them all)
    with one key set: masks if any dataset has them, vertices if any dataset has vertices of
    the hand model's topology (``hand_vertices``).
    """
    several = len(names) > 1
    datasets = [load_training_dataset(n, _dataset_root(n, data_root, several), ft, hand_vertices)
                for n in names]  # fmt: skip
    verts = [d.verts for d in datasets if getattr(d, "verts", None) is not None]
    num_vertices = None
    if verts and all(v.shape[1] == hand_vertices for v in verts):
        num_vertices = hand_vertices
    elif verts:
        log.warning("dataset vertices do not fit the hand model (%d): no mesh loss", hand_vertices)
    common = {
        "shift": float(ft["shift"]),
        "scale_range": tuple(ft["scale_range"]),
        "with_mask": any(getattr(d, "load_mask", False) for d in datasets),
        "num_vertices": num_vertices,
    }
    train_parts, val_parts = [], []
    for k, d in enumerate(datasets):
        tr, va = split_indices(d, float(ft["val_fraction"]), seed + k, int(ft["val_block"]))
        move = d.name in ft["reposition"]
        train_parts.append(RealTrainItems(d, image_size, seed + 1000 * k, move, indices=tr,
                                          **common))  # fmt: skip
        if len(va):
            val_parts.append(RealTrainItems(d, image_size, seed, False, indices=va, **common))
        log.info("%s: %d training / %d validation images", d.name, len(tr), len(va))
    train_set = train_parts[0] if len(train_parts) == 1 else ConcatDataset(train_parts)
    if not val_parts:
        return train_set, None
    if len(val_parts) == 1:
        return train_set, val_parts[0]
    both = ConcatDataset(val_parts)
    return train_set, Subset(both, np.random.default_rng(seed).permutation(len(both)))
