"""The real benchmarks as evaluation sequences: oracle crops from the ground-truth joints.

``real_sequences(dataset, data_root, image_size, limit)`` reads a benchmark with its loader
(:mod:`seqhand.data`) and yields each sequence, in order, as a list of
:class:`~seqhand.evaluation.evaluator.EvalFrame` for :func:`evaluate_sequences`:

==================  ==========================================  ===============  ===========
dataset             split                                       joints           slot 0
==================  ==========================================  ===============  ===========
``stb``             test: B1Counting, B1Random; BB left + right 21               palm centre
                    (hand3d's 6,000 frames; ``stb_view``)
``egodexter``       Desk, Fruits, Kitchen, Rotunda              5 fingertips     -
``dexter_object``   Grasp1, Grasp2, Occlusion, Rigid, Pinch,    5 fingertips     -
                    Rotate
``freihand``        evaluation (needs ``evaluation_xyz.json``;  21 (+ 778        wrist
                    ``evaluation_verts.json`` adds meshes)      vertices)
==================  ==========================================  ===============  ===========

**Oracle crops.** The paper localises hands with a detector (MobileNet+SSD, section 5) and
crops a square of ``2.2 x`` the longer side of the detected box around its centre. We crop the
same square around the tight box of the *ground-truth* 2D joints ("oracle crops"), so the
numbers measure the estimator, not a detector, and are reproducible without one; ``seqhand
infer`` is the detector/tracker path for videos. Expect oracle-crop numbers to be somewhat
better than detector-crop numbers.

* Fingertip-only sets (EgoDexter, Dexter+Object) have no box of the whole hand: the box of the
  valid tips is widened to at least the image size of a typical hand
  (:data:`~seqhand.models.HAND_EXTENT_M` = 18 cm at the tips' mean depth, ``f * 0.18 / z``
  pixels) around the tips' centre, so the crop still holds the palm and wrist.
* A frame with no valid joint (an unannotated frame) takes the crop of the nearest annotated
  frame before it (after it at the start of a sequence), as a tracker would; it still goes
  through the network so the recurrent state sees every frame, but adds nothing to the
  metrics. A sequence with no annotated frame is cropped to the whole image.
* FreiHAND's evaluation images are hand crops already (224 x 224, hand centred); we still crop
  them from the ground-truth joints, like the other sets and like fine-tuning
  (:mod:`seqhand.training.real`), so the hand appears at the scale the network was trained at.

Ground truth: ``joints3d`` metres in the (mirrored, right-hand) camera frame, ``joints2d`` the
ground-truth 2D joints mapped into the crop, ``valid`` the annotated joints (EgoDexter and
Dexter+Object: the 5 tips at most). Left hands (STB, EgoDexter, Dexter+Object) are mirrored by
the loaders; the metrics are invariant to the mirror, so no un-mirroring is needed. STB frames
carry ``root_kind="palm"``: the evaluator replaces slot 0 of the prediction with a palm point.
"""

from __future__ import annotations

import os
from collections.abc import Iterator

import numpy as np

from seqhand.conventions import CROP_FACTOR, HAND_EXTENT_M
from seqhand.data.types import RealSample
from seqhand.errors import SeqhandError
from seqhand.evaluation.evaluator import EvalFrame
from seqhand.geometry.crop import Box, CropTransform, full_frame_box

REAL_EVAL_DATASETS = ("stb", "egodexter", "dexter_object", "freihand")


class EvalDataError(SeqhandError):
    """A benchmark cannot be evaluated as given (e.g. a split without ground truth)."""


def open_benchmark(dataset: str, data_root: str | os.PathLike | None = None, *,
                   stb_view: str = "BB-both"):  # fmt: skip
    """The evaluation split of a benchmark, as its loader (see the table in the module doc)."""
    from seqhand.data import STB, DexterObject, EgoDexter, FreiHAND

    if dataset == "stb":
        return STB(data_root, "test", view=stb_view)
    if dataset == "egodexter":
        return EgoDexter(data_root)
    if dataset == "dexter_object":
        return DexterObject(data_root)
    if dataset == "freihand":
        ds = FreiHAND(data_root, "evaluation", load_mask=False, load_verts=True)
        if ds.xyz is None:
            raise EvalDataError(
                f"{ds.root}: FreiHAND's evaluation split has no evaluation_xyz.json; evaluating "
                "needs the released evaluation labels (or use FreiHAND's Codalab server)"
            )
        return ds
    raise EvalDataError(f"unknown benchmark {dataset!r}; expected one of {REAL_EVAL_DATASETS}")


def oracle_box(sample: RealSample, *, min_hand_m: float | None = None) -> Box | None:
    """The tight box of the valid ground-truth 2D joints, or None if no joint is valid.

    With ``min_hand_m`` (fingertip-only sets), the box is widened about its centre to at least
    ``f * min_hand_m / z`` pixels on each side (``f`` the mean focal length, ``z`` the valid
    joints' mean depth).
    """
    if sample.joints2d is None:
        return None
    valid = sample.joint_valid & np.isfinite(sample.joints2d).all(-1)
    if not valid.any():
        return None
    box = Box.from_points(sample.joints2d[valid])
    if min_hand_m is not None and sample.K is not None and sample.joints3d is not None:
        z = float(np.mean(sample.joints3d[valid, 2]))
        if z > 0:
            f = 0.5 * (abs(sample.K[0, 0]) + abs(sample.K[1, 1]))
            need = f * min_hand_m / z
            cx, cy = box.center
            hw, hh = max(box.width, need) / 2, max(box.height, need) / 2
            box = Box(cx - hw, cy - hh, cx + hw, cy + hh)
    if box.longer_side <= 0:
        return None
    return box


def sequence_crops(samples: list[RealSample], image_size: int, *,
                   fingertips_only: bool = False) -> list[CropTransform]:  # fmt: skip
    """One oracle crop per frame (module docstring: unannotated frames borrow a neighbour's)."""
    boxes = [oracle_box(s, min_hand_m=HAND_EXTENT_M if fingertips_only else None)
             for s in samples]  # fmt: skip
    known = [i for i, b in enumerate(boxes) if b is not None]
    crops = []
    for i, s in enumerate(samples):
        if not known:
            h, w = s.image.shape[:2]
            box = full_frame_box(h, w, CROP_FACTOR)
        else:
            prev = [k for k in known if k <= i]
            box = boxes[prev[-1] if prev else known[0]]
        crops.append(CropTransform.from_box(box, image_size, CROP_FACTOR))
    return crops


def eval_frames(samples: list[RealSample], image_size: int, *,
                fingertips_only: bool = False) -> list[EvalFrame]:  # fmt: skip
    """Samples of one sequence (in order) -> oracle-cropped :class:`EvalFrame` s."""
    crops = sequence_crops(samples, image_size, fingertips_only=fingertips_only)
    frames = []
    for s, c in zip(samples, crops):
        valid = np.asarray(s.joint_valid, dtype=bool).copy()
        valid &= np.isfinite(s.joints3d).all(-1)  # a NaN is a missing joint, never a 0
        j3 = np.where(valid[:, None], np.nan_to_num(s.joints3d), 0.0)
        j2 = None
        if s.joints2d is not None:
            j2 = np.where(valid[:, None], c.to_crop(np.nan_to_num(s.joints2d)), 0.0)
        pad = float(s.image.mean())
        frames.append(EvalFrame(image=c.crop_image(s.image, pad_value=pad), joints3d=j3,
                                joints2d=j2, valid=valid, root_kind=s.root_kind,
                                verts3d=s.verts3d))  # fmt: skip
    return frames


def real_sequences(
    dataset: str,
    data_root: str | os.PathLike | None,
    image_size: int,
    limit: int | None = None,
    *,
    stb_view: str = "BB-both",
) -> tuple[Iterator[tuple[str, list[EvalFrame]]], int]:
    """A benchmark's sequences as evaluation frames, read lazily one sequence at a time.

    Args:
        dataset: ``stb``, ``egodexter``, ``dexter_object`` or ``freihand``.
        data_root: the dataset folder (default ``$SEQHAND_DATA/<name>``).
        image_size: side ``S`` of the model's square input, pixels.
        limit: only the first ``limit`` sequences.
        stb_view: STB's images: ``"BB-both"`` (hand3d's evaluation set, default),
            ``"BB-left"`` or ``"SK"``.

    Returns:
        ``(iterator of (sequence_id, [EvalFrame, ...]), number of sequences)``.
    """
    ds = open_benchmark(dataset, data_root, stb_view=stb_view)
    seqs = ds.sequences()
    if limit is not None:
        seqs = seqs[: max(0, int(limit))]
    tips = dataset in ("egodexter", "dexter_object")

    def generate() -> Iterator[tuple[str, list[EvalFrame]]]:
        for seq_id, idx in seqs:
            samples = [ds[i] for i in idx]
            yield seq_id, eval_frames(samples, image_size, fingertips_only=tips)

    return generate(), len(seqs)
