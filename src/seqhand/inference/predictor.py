"""The streaming predictor: frame in, 3D hand out, with the recurrent state carried along.

``Predictor.step(frame, state) -> (output, state)`` localises the hand (a
:class:`~seqhand.inference.localize.BoxSource`), cuts the paper's square crop
(:class:`~seqhand.geometry.crop.CropTransform`; left hands are mirrored into the right hand
the model knows), runs one step of the network with the previous state, decodes the 26
parameters to a hand and maps it back to the full image (and left hands back to the left).
``run(frames)`` is the same as a generator over a video (detectron2's ``VideoVisualizer``
style); ``reset()`` starts a new sequence.

**What the 3D output means.** The network's camera is weak perspective (Eq. 3-4): the 3D joints
and vertices are in metres, in the camera's orientation (x right, y down, z away from the
camera), *relative to the wrist*. There is no absolute depth: weak perspective cannot tell a
big far hand from a small near one, so the distance to the camera is not estimated. What the
output does carry is the scale ``s`` (full-image pixels per metre) with
``joints2d = s * joints3d[:, :2] + joints2d[0]``; with a pinhole camera of focal length ``f``
pixels the wrist's depth is about ``Z = f / s`` metres.

**State.** :class:`PredictorState` holds the network's recurrent state, the previous frame's
output (which the tracker reads) and the frame counter. The recurrent state is reset (a new
sequence begins) at the first frame, after any frame without a hand, and on every frame with
``per_frame=True`` (the comparison run that ignores time).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Iterable, Iterator
from typing import Any

import numpy as np
import torch

from seqhand.conventions import CROP_FACTOR, OUTPUT_DIM, mirror_x
from seqhand.errors import SeqhandError
from seqhand.geometry.crop import Box, CropTransform, Side
from seqhand.hand.layer import HandLayer
from seqhand.inference.camera import PinholeCamera, camera_translation
from seqhand.inference.localize import BoxSource, TrackedBox, box_is_usable
from seqhand.inference.presence import (
    crop_valid_mask,
    hand_colours,
    hand_likeness,
    silhouette_contrast,
)
from seqhand.models.decode import decode_params
from seqhand.models.seqhandnet import normalize_frames

PRESENCE_THRESHOLD = 0.2
"""Default ``min_confidence`` for tracked boxes (see :mod:`seqhand.inference.presence`)."""


class PredictorError(SeqhandError, ValueError):
    """The predictor was given something it cannot use (bad frame, bad option)."""


@dataclasses.dataclass
class FrameOutput:
    """The prediction for one frame. Array fields are ``None`` when ``found`` is False.

    Attributes:
        index: frame index in the sequence (0-based).
        found: a hand was localised and estimated in this frame.
        side: ``"right"`` or ``"left"`` (left hands were mirrored for the model and back).
        box: the hand box the crop was made from (full-image pixels).
        crop: the crop <-> full image map used.
        params: ``(26,)`` network output ``[s, tx, ty, rx, ry, rz, theta_pca(10), beta(10)]`` in
            the units of the *crop* (pixels of the S x S input); for a left hand these are the
            parameters of the mirrored (right) hand the model saw.
        joints3d: ``(21, 3)`` metres, camera-aligned, wrist at the origin (module docstring).
        vertices3d: ``(V, 3)`` metres, same frame.
        joints2d: ``(21, 2)`` full-image pixels.
        vertices2d: ``(V, 2)`` full-image pixels.
        scale: ``s`` in full-image pixels per metre:
            ``joints2d = scale * joints3d[:, :2] + joints2d[0]``.
        confidence: how sure we are that a hand is there, in [0, 1], never NaN (0 when
            ``found`` is False): the detector's score when a detector gave this frame's box,
            else ``fit_score``.
        reset: the recurrent state was reset before this frame (a sequence starts here).
        track_id: the hand's track (0 for the single-hand predictor; see
            :class:`~seqhand.inference.hands.HandsPredictor`).
        detector_score: the box's own score (a detector's, or a boxes file's), if any.
        fit_score: :func:`~seqhand.inference.presence.silhouette_contrast` of the predicted
            mesh in the crop (``None`` when not computed).
        camera: the pinhole camera of the frame (:class:`PinholeCamera`).
        root_cam: ``(3,)`` the wrist in camera space, metres (see :func:`camera_translation`).
        joints_cam: ``(21, 3)`` camera-space joints, metres (``joints3d + root_cam``).
        vertices_cam: ``(V, 3)`` camera-space vertices, metres.
        mano: MANO-compatible parameters (:meth:`Predictor.mano_params`): ``global_orient (3,)``,
            ``hand_pose (45,)`` axis-angle relative to the *flat* hand, ``betas (10,)``,
            ``transl (3,)`` metres, for the right-hand model (a left hand: the mirrored right
            hand, x negated; see docs/inference.md).
    """

    index: int
    found: bool
    side: Side | None = None
    box: Box | None = None
    crop: CropTransform | None = None
    params: np.ndarray | None = None
    joints3d: np.ndarray | None = None
    vertices3d: np.ndarray | None = None
    joints2d: np.ndarray | None = None
    vertices2d: np.ndarray | None = None
    scale: float | None = None
    confidence: float = 0.0
    reset: bool = False
    track_id: int = 0
    detector_score: float | None = None
    fit_score: float | None = None
    camera: PinholeCamera | None = None
    root_cam: np.ndarray | None = None
    joints_cam: np.ndarray | None = None
    vertices_cam: np.ndarray | None = None
    mano: dict | None = None

    def to_record(self) -> dict:
        """A JSON-ready dict (no vertices), one line of ``results.jsonl``."""

        def lst(a):
            return None if a is None else np.round(np.asarray(a, np.float64), 6).tolist()

        def num(x):
            return None if x is None else round(float(x), 6)

        return {
            "frame": int(self.index),
            "id": int(self.track_id),
            "found": bool(self.found),
            "side": self.side,
            "box": None if self.box is None else lst(self.box.as_array()),
            "confidence": round(float(self.confidence), 6),
            "detector_score": num(self.detector_score),
            "fit_score": num(self.fit_score),
            "reset": bool(self.reset),
            "scale_px_per_m": self.scale,
            "params": lst(self.params),
            "joints3d_m": lst(self.joints3d),
            "joints2d_px": lst(self.joints2d),
            "root_cam_m": lst(self.root_cam),
            "joints_cam_m": lst(self.joints_cam),
            "mano": None if self.mano is None else {k: lst(v) for k, v in self.mano.items()},
        }


@dataclasses.dataclass
class PredictorState:
    """Everything :meth:`Predictor.step` carries from one frame to the next.

    Attributes:
        model_state: the network's recurrent state (``None`` = start of a sequence).
        previous: the previous frame's output (read by trackers), ``None`` at the start.
        index: index of the next frame.
        colours: the hand's colour model (:func:`~seqhand.inference.presence.hand_colours`)
            learnt on the sequence's detector / user boxes, for the presence check.
    """

    model_state: Any = None
    previous: FrameOutput | None = None
    index: int = 0
    colours: np.ndarray | None = None


class TorchEngine:
    """One network step in PyTorch: ``(B, 3, S, S)`` float RGB in [0, 1] -> ``(B, 26)``."""

    runtime = "torch"

    def __init__(self, model: torch.nn.Module, device: str | torch.device = "cpu") -> None:
        self.device = torch.device(device)
        self.model = model.to(self.device).eval()

    def __call__(self, frames01: np.ndarray, state: Any) -> tuple[np.ndarray, Any]:
        with torch.inference_mode():
            x = torch.from_numpy(np.ascontiguousarray(frames01, dtype=np.float32))
            params, state = self.model.step(normalize_frames(x.to(self.device)), state)
        return params.float().cpu().numpy(), state


def make_engine(model: Any, runtime: str = "torch", device: str = "cpu", **kw: Any):
    """The step engine for ``runtime``: a model (exported on the fly for ``"onnx"``), an
    ``.onnx`` path, or an engine object (returned as is)."""
    if hasattr(model, "runtime") and callable(model):
        return model
    if runtime == "torch":
        if not isinstance(model, torch.nn.Module):
            raise PredictorError(f"runtime 'torch' needs a PyTorch model, got {type(model)}")
        return TorchEngine(model, device)
    if runtime == "onnx":
        from seqhand.inference.export import OnnxEngine, export_onnx

        if isinstance(model, torch.nn.Module):
            image_size = int(kw.pop("image_size"))
            return OnnxEngine(export_onnx(model, None, image_size), **kw)
        return OnnxEngine(model, **kw)
    raise PredictorError(f"runtime must be 'torch' or 'onnx', got {runtime!r}")


def _check_onnx_origin(engine, model, rec: dict, onnx, checkpoint) -> None:
    """Warn when an ``.onnx`` file was not exported from ``checkpoint`` (the ONNX graph is what
    runs; the checkpoint only gave the image size and hand model)."""
    import logging

    from seqhand.inference.export import weights_digest

    log = logging.getLogger("seqhand.infer")
    meta = getattr(engine, "meta", {}) or {}
    recorded = meta.get("weights_sha256")
    if recorded is not None:
        if recorded != weights_digest(model):
            log.warning("%s was exported from other weights than %s: the ONNX model runs, "
                        "not the checkpoint", onnx, checkpoint)  # fmt: skip
    elif meta.get("model_spec") not in (None, rec.get("model_spec")):
        log.warning("%s holds model %s but %s is %s: the ONNX model runs, not the checkpoint",
                    onnx, meta.get("model_spec"), checkpoint, rec.get("model_spec"))  # fmt: skip
    else:
        log.warning("%s records no weights digest (exported by an older seqhand): cannot check "
                    "that it comes from %s", onnx, checkpoint)  # fmt: skip
    if meta.get("hand_model") not in (None, rec.get("hand_model") or "builtin"):
        log.warning("%s was exported for hand model %s, the checkpoint uses %s", onnx,
                    meta.get("hand_model"), rec.get("hand_model"))  # fmt: skip


class Predictor:
    """Streaming 3D hand pose and shape from video frames (module docstring).

    Args:
        model: a seqhand model (:func:`seqhand.models.build_model` /
            :func:`seqhand.training.checkpoint.load_model`), or for ``runtime="onnx"`` an
            ``.onnx`` file written by :func:`seqhand.inference.export.export_onnx` (a model is
            exported on the fly).
        hand_layer: the hand model the network was trained with (a ``HandLayer`` with
            ``pose_origin="mean"``, or an asset spec; default the built-in hand).
        device: torch device for the network and the hand layer.
        runtime: ``"torch"`` or ``"onnx"`` (onnxruntime on the CPU).
        box_source: where the hand is in each frame; may also be given per call to
            :meth:`step`.
        image_size: the network's input side S (default: the checkpoint's / 224).
        side: hand side assumed when the box says nothing (``"right"`` / ``"left"``).
        per_frame: reset the recurrent state at every frame (the comparison run).
        crop_factor: crop side / longer box side (2.2, the paper's).
        pad_value: value of crop pixels outside the frame.
        onnx_threads: onnxruntime's intra-op threads (``None``: its default).
        min_confidence: a *tracked* box (one the tracker made from the previous frame, not a
            detector's or a user's) whose ``fit_score`` falls below this is not a hand:
            ``found=False`` (:data:`PRESENCE_THRESHOLD`; 0 keeps every tracked frame).
        check_presence: compute ``fit_score`` on every frame (a few ms; ``False`` skips it,
            and then a tracked box is always kept).
        focal, fov: the camera's focal length (pixels) or horizontal field of view (degrees)
            for the camera-space outputs (default :data:`~seqhand.inference.camera.
            DEFAULT_FOV_DEG`).
    """

    def __init__(
        self,
        model: Any,
        hand_layer: HandLayer | str | None = None,
        device: str = "cpu",
        runtime: str = "torch",
        *,
        box_source: BoxSource | None = None,
        image_size: int | None = None,
        side: Side = "right",
        per_frame: bool = False,
        crop_factor: float = CROP_FACTOR,
        pad_value: int = 0,
        onnx_threads: int | None = None,
        min_confidence: float = None,  # type: ignore[assignment]
        check_presence: bool = True,
        focal: float | None = None,
        fov: float | None = None,
    ) -> None:
        if side not in ("right", "left"):
            raise PredictorError(f"side must be 'right' or 'left', got {side!r}")
        kw: dict[str, Any] = {}
        if runtime == "onnx":
            kw["threads"] = onnx_threads
            if isinstance(model, torch.nn.Module):
                kw["image_size"] = int(image_size or 224)
        self.engine = make_engine(model, runtime, device, **kw)
        meta_size = getattr(self.engine, "image_size", None)
        if image_size is not None and meta_size is not None and int(image_size) != meta_size:
            raise PredictorError(
                f"image_size {image_size} differs from the ONNX model's input size {meta_size}"
            )
        self.image_size = int(image_size or meta_size or 224)
        if not isinstance(hand_layer, HandLayer):
            hand_layer = HandLayer(hand_layer, pose_origin="mean")
        self.device = torch.device(device)
        self.hand_layer = hand_layer.to(self.device)
        self.faces = self.hand_layer.faces.cpu().numpy()
        self.box_source = box_source
        self.side = side
        self.per_frame = bool(per_frame)
        self.crop_factor = float(crop_factor)
        self.pad_value = pad_value
        self.min_confidence = (
            PRESENCE_THRESHOLD if min_confidence is None else float(min_confidence)
        )
        self.check_presence = bool(check_presence)
        if focal is not None and fov is not None:
            raise PredictorError("give a focal length or a field of view, not both")
        try:  # validate now (a 2 x 2 frame stands in for the real size)
            PinholeCamera.for_frame(2, 2, focal, fov)
        except ValueError as e:
            raise PredictorError(str(e)) from None
        self.focal, self.fov = focal, fov
        self.last_crop: CropTransform | None = None
        self.last_index = 0
        self._state = PredictorState()

    @property
    def runtime(self) -> str:
        return self.engine.runtime

    @classmethod
    def from_checkpoint(
        cls,
        checkpoint: str,
        runtime: str = "torch",
        onnx: str | None = None,
        **kwargs: Any,
    ) -> Predictor:
        """Build from a ``seqhand`` checkpoint (image size and hand model from its record).

        With ``runtime="onnx"``: ``onnx`` = an exported file, else the model is exported in
        memory.
        """
        from seqhand.training.checkpoint import load_model

        model, rec = load_model(checkpoint)
        hand = kwargs.pop("hand_layer", None) or rec.get("hand_model") or "builtin"
        size = kwargs.pop("image_size", None) or int(rec.get("image_size", 224))
        src = onnx if (runtime == "onnx" and onnx is not None) else model
        pred = cls(src, hand, runtime=runtime, image_size=size, **kwargs)
        if src is onnx and onnx is not None:
            _check_onnx_origin(pred.engine, model, rec, onnx, checkpoint)
        return pred

    # -- streaming ---------------------------------------------------------------------------
    def reset(self) -> None:
        """Forget the sequence held for :meth:`__call__` / :meth:`run` (the next frame is 0)."""
        self._state = PredictorState()

    def __call__(self, frame: np.ndarray, box: Box | None = None) -> FrameOutput:
        """:meth:`step` with the predictor's own state (call :meth:`reset` between videos)."""
        out, self._state = self.step(frame, self._state, box=box)
        return out

    def run(
        self, frames: Iterable[np.ndarray], boxes: Iterable[Box | None] | None = None
    ) -> Iterator[FrameOutput]:
        """Predict a whole sequence lazily: one :class:`FrameOutput` per frame, in order.

        Starts a new sequence (its own state); ``boxes`` optionally gives each frame's box
        (overriding the box source).
        """
        state = PredictorState()
        box_iter = iter(boxes) if boxes is not None else None
        for frame in frames:
            box = next(box_iter, None) if box_iter is not None else None
            out, state = self.step(frame, state, box=box, use_source=box_iter is None)
            yield out

    def step(
        self,
        frame: np.ndarray,
        state: PredictorState | None = None,
        *,
        box: Box | None = None,
        use_source: bool = True,
    ) -> tuple[FrameOutput, PredictorState]:
        """One frame: ``(H, W, 3)`` uint8 RGB -> ``(FrameOutput, new state)``.

        ``box`` overrides the box source for this frame; without either, the frame has no hand.
        """
        img = _check_frame(frame)
        state = state if state is not None else PredictorState()
        k = state.index
        if box is None and use_source:
            if self.box_source is None:
                raise PredictorError(
                    "no box for this frame and no box source: give Predictor(box_source=...) "
                    "(GivenBoxes, Tracker, MediaPipeDetector) or step(frame, box=Box(...))"
                )
            box = self.box_source(k, img, state.previous)
        if not box_is_usable(box, img.shape):
            out = FrameOutput(index=k, found=False, box=box, reset=True)
            return out, PredictorState(None, out, k + 1)
        restart = self.per_frame or state.previous is None or not state.previous.found
        colours = None if restart else state.colours
        out, model_state = self.estimate(
            img, box, box.side or self.side, None if restart else state.model_state, k, restart,
            colours=colours,
        )  # fmt: skip
        colours = self.learn_colours(img, out, colours)
        return out, PredictorState(model_state if out.found else None, out, k + 1, colours)

    def estimate(
        self,
        img: np.ndarray,
        box: Box,
        side: Side,
        model_state: Any,
        index: int,
        reset: bool,
        track_id: int = 0,
        colours: np.ndarray | None = None,
    ) -> tuple[FrameOutput, Any]:
        """One network step on ``box`` of ``img`` with ``model_state`` (``None``: a new
        sequence), the presence check and the camera-space outputs.

        A tracked box (:class:`~seqhand.inference.localize.TrackedBox`) whose ``fit_score``
        is below ``min_confidence`` gives ``found=False`` (the track is over).
        """
        crop = CropTransform.from_box(box, self.image_size, self.crop_factor, side == "left")
        patch = crop.crop_image(img, self.pad_value)
        x = patch.astype(np.float32).transpose(2, 0, 1)[None] / np.float32(255.0)
        self.last_crop, self.last_index = crop, int(index)
        params, model_state = self.engine(x, model_state)
        out = self.decode(params[0], crop, index, box, side, reset=reset, frame_shape=img.shape,
                          patch=patch, colours=colours)  # fmt: skip
        out.track_id = int(track_id)
        if (
            isinstance(box, TrackedBox)
            and out.fit_score is not None
            and out.fit_score < self.min_confidence
        ):
            out = FrameOutput(index=int(index), found=False, side=side, box=box, reset=reset,
                              track_id=int(track_id), fit_score=out.fit_score)  # fmt: skip
        return out, model_state

    # -- decoding ----------------------------------------------------------------------------
    def decode(
        self,
        params: np.ndarray,
        crop: CropTransform,
        index: int = 0,
        box: Box | None = None,
        side: Side = "right",
        reset: bool = False,
        frame_shape: tuple[int, ...] | None = None,
        patch: np.ndarray | None = None,
        colours: np.ndarray | None = None,
    ) -> FrameOutput:
        """26 crop-space parameters -> a :class:`FrameOutput` in the full image.

        With ``frame_shape`` the camera-space outputs and MANO parameters are filled in; with
        ``patch`` (the crop the network saw) the ``fit_score`` (with the track's hand
        ``colours``, see :meth:`_fit`).
        """
        p = np.asarray(params, dtype=np.float32).reshape(OUTPUT_DIM)
        with torch.inference_mode():
            dec = decode_params(torch.from_numpy(p)[None].to(self.device), self.hand_layer)
        j3 = dec.joints3d[0].double().cpu().numpy()
        v3 = dec.vertices3d[0].double().cpu().numpy()
        j2 = crop.to_full(dec.joints2d[0].double().cpu().numpy())
        v2 = crop.to_full(dec.vertices2d[0].double().cpu().numpy())
        if crop.mirror:
            j3, v3 = mirror_x(j3), mirror_x(v3)
        scale = float(p[0]) / crop.scale
        det = None if box is None or box.score is None else float(box.score)
        fit = None
        if patch is not None and self.check_presence and frame_shape is not None:
            fit = self._fit(patch, dec.vertices2d[0].double().cpu().numpy(), crop, frame_shape,
                            box, colours)  # fmt: skip
        conf = det if det is not None else (fit if fit is not None else 1.0)
        out = FrameOutput(
            index=int(index), found=True, side=side, box=box, crop=crop, params=p,
            joints3d=j3, vertices3d=v3, joints2d=j2, vertices2d=v2, scale=scale,
            confidence=float(np.clip(conf, 0.0, 1.0)), reset=bool(reset), detector_score=det,
            fit_score=fit,
        )  # fmt: skip
        if frame_shape is not None and np.isfinite(j2).all() and np.isfinite(j3).all():
            cam = PinholeCamera.for_frame(frame_shape[0], frame_shape[1], self.focal, self.fov)
            root = camera_translation(j3, j2, cam)
            out.camera, out.root_cam = cam, root
            out.joints_cam, out.vertices_cam = j3 + root, v3 + root
            out.mano = self.mano_params(dec, root, crop.mirror)
        return out

    def _fit(self, patch, v2c, crop, frame_shape, box, colours) -> float:
        """The presence check: for a tracked box with a hand colour model, the skin
        likelihood inside the silhouette against its ring (:func:`hand_likeness`); otherwise
        (a detector's / user's box, or no colour model yet) how well colour separates the
        silhouette from its ring (:func:`silhouette_contrast`)."""
        valid = crop_valid_mask(crop, frame_shape)
        if isinstance(box, TrackedBox) and colours is not None:
            return hand_likeness(patch, v2c, self.faces, colours, valid)
        return silhouette_contrast(patch, v2c, self.faces, valid)

    def learn_colours(self, img, out: FrameOutput, colours: np.ndarray | None):
        """Update a track's hand colour model from a frame whose box a detector or the user
        gave (an even blend with the previous model); tracked frames teach nothing."""
        if not out.found or isinstance(out.box, TrackedBox) or not self.check_presence:
            return colours
        patch = out.crop.crop_image(img, self.pad_value)
        v2c = out.crop.to_crop(out.vertices2d)
        new = hand_colours(patch, v2c, self.faces, crop_valid_mask(out.crop, img.shape))
        if new is None:
            return colours
        return new if colours is None else 0.5 * (colours + new)

    def mano_params(self, dec, root_cam: np.ndarray, mirrored: bool) -> dict[str, np.ndarray]:
        """MANO's parameters for a decoded hand placed with its wrist at ``root_cam``.

        ``smplx.MANO(flat_hand_mean=True, use_pca=False)`` of the *right* hand model with
        ``global_orient``, ``hand_pose`` (45 axis-angle, relative to the flat hand), ``betas``
        and ``transl`` gives ``vertices_cam`` (for a left hand: with x negated). The hand
        layer's ``transl`` is applied after the global rotation about the rest-pose wrist
        ``J0``, so ``transl = root_cam - J0`` (mirrored for a left hand).
        """
        parts = dec.params
        rot = parts["rot"][0].double().cpu().numpy()
        pca = parts["pose_pca"][0].to(self.hand_layer.hands_components.dtype)
        with torch.inference_mode():
            pose = self.hand_layer.pca_to_pose(pca[None])[0] + self.hand_layer.pose_mean
        rmat = _rodrigues(rot)
        j0 = rmat.T @ dec.root3d[0].double().cpu().numpy()
        root = np.array(root_cam, np.float64)
        if mirrored:
            root[0] = -root[0]
        return {
            "global_orient": rot,
            "hand_pose": pose.double().cpu().numpy(),
            "betas": parts["betas"][0].double().cpu().numpy(),
            "transl": root - j0,
        }

    def faces_for(self, side: Side | None) -> np.ndarray:
        """``(F, 3)`` faces wound counter-clockwise for ``side`` (mirroring flips the winding)."""
        return self.faces[:, ::-1].copy() if side == "left" else self.faces


def _check_frame(frame: np.ndarray) -> np.ndarray:
    img = np.asarray(frame)
    if img.ndim != 3 or img.shape[2] not in (3, 4) or min(img.shape[:2]) < 1:
        raise PredictorError(f"a frame must be an (H, W, 3) RGB image, got shape {img.shape}")
    if img.dtype != np.uint8:
        if not np.issubdtype(img.dtype, np.floating) or not np.all(np.isfinite(img)):
            raise PredictorError(f"a frame must be uint8 RGB (or float in [0, 1]), got {img.dtype}")
        img = np.clip(np.rint(img * 255.0), 0, 255).astype(np.uint8)
    return img[..., :3]


def _rodrigues(r: np.ndarray) -> np.ndarray:
    from seqhand.geometry.rotations import axis_angle_to_matrix

    return axis_angle_to_matrix(torch.as_tensor(r, dtype=torch.float64)).numpy()


def scale_to_depth(scale_px_per_m: float, focal_px: float) -> float:
    """Approximate wrist depth (metres) for a pinhole camera of focal length ``focal_px``."""
    if not (scale_px_per_m > 0 and math.isfinite(scale_px_per_m)):
        raise ValueError(
            f"scale must be a positive number of pixels per metre, got {scale_px_per_m}"
        )
    return float(focal_px) / float(scale_px_per_m)
