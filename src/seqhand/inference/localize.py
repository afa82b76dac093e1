"""Hand localisation behind one interface: user boxes, tracking, and MediaPipe's detector.

A :class:`BoxSource` answers, for frame ``k``, where the hand is::

    source(index: int, frame: (H, W, 3) uint8, previous: FrameOutput | None) -> Box | None

``previous`` is the predictor's output for frame ``k - 1`` (``None`` at the start of a video);
``None`` as the answer means "no hand in this frame". A source keeps no state of its own: what
it needs from the past travels in ``previous`` (its ``found``, ``box`` and ``joints2d``), so the
predictor's state holds everything and a source can serve several videos at once.

Sources:

* :class:`GivenBoxes` - boxes given by the user, read with :func:`read_boxes` from a CSV or JSON
  file (formats in the function's docstring and docs/inference.md);
* :class:`Tracker` - the box of the previous frame's predicted 2D joints, smoothed, as
  real-time hand trackers do, started (and restarted after a lost track) by another source;
* :class:`MediaPipeDetector` - MediaPipe's palm detector + landmark model, when the optional
  ``mediapipe`` package is installed (``pip install 'seqhand[detector]'``).
"""

from __future__ import annotations

import contextlib
import csv
import dataclasses
import json
import math
import os
import warnings
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import numpy as np

from seqhand.errors import MissingExtraError, SeqhandError
from seqhand.geometry.crop import SIDES, Box, BoxError


class BoxFileError(SeqhandError, ValueError):
    """A boxes file cannot be read or does not follow the documented format."""


class Observation(Protocol):
    """What a box source may read of the previous frame's prediction (a ``FrameOutput``)."""

    found: bool
    box: Box | None
    joints2d: np.ndarray | None


@runtime_checkable
class BoxSource(Protocol):
    """Where the hand is in frame ``index`` (``None``: no hand). See the module docstring."""

    def __call__(
        self, index: int, frame: np.ndarray, previous: Observation | None
    ) -> Box | None: ...


# --------------------------------------------------------------------------------------------
# User boxes
# --------------------------------------------------------------------------------------------
class GivenBoxes:
    """Boxes given per frame: ``boxes[index]`` (a missing frame or ``None`` = no hand).

    Args:
        boxes: frame index -> :class:`Box` or ``None``.
    """

    def __init__(self, boxes: Mapping[int, Box | None]) -> None:
        self.boxes = {int(k): v for k, v in boxes.items()}

    @classmethod
    def from_file(cls, path: str | os.PathLike) -> GivenBoxes:
        return cls(read_boxes(path))

    def __call__(self, index: int, frame: np.ndarray, previous: Observation | None) -> Box | None:
        return self.boxes.get(int(index))

    def __len__(self) -> int:
        return len(self.boxes)


def read_boxes(path: str | os.PathLike) -> dict[int, Box | None]:
    """Read per-frame hand boxes from a CSV or JSON file.

    Coordinates are full-image pixels, x right, y down, pixel centres at integers; ``frame`` is
    the 0-based frame index (video order, or sorted file order for a folder of frames).

    **CSV** (``.csv``, ``.txt``): one row per frame, an optional header, columns
    ``frame,x0,y0,x1,y1[,side]`` with ``side`` = ``right`` / ``left`` (empty = unknown).
    An empty box (``frame,,,,``) marks a frame with no hand. Lines starting with ``#`` are
    comments.

    **JSON** (``.json``): either a list of records
    ``[{"frame": 0, "box": [x0, y0, x1, y1], "side": "left"}, ...]`` (``"box": null`` = no
    hand) or an object ``{"0": [x0, y0, x1, y1], "1": null, ...}``; a record may also carry a
    ``"score"``.

    Returns:
        frame index -> :class:`Box` (or ``None``: a frame explicitly without a hand).

    Raises:
        BoxFileError: the file is missing or malformed; the message names the file and line.
    """
    path = Path(path)
    if not path.is_file():
        raise BoxFileError(f"{path}: no such boxes file")
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        raise BoxFileError(f"{path}: unreadable boxes file ({e})") from None
    if path.suffix.lower() == ".json":
        return _read_json_boxes(path, text)
    if path.suffix.lower() in (".csv", ".txt"):
        return _read_csv_boxes(path, text)
    raise BoxFileError(f"{path}: unknown boxes file type (expected .csv, .txt or .json)")


def _make_box(path: Path, where: str, coords: Any, side: Any, score: Any = None) -> Box | None:
    if coords is None:
        return None
    try:
        vals = [float(c) for c in coords]
    except (TypeError, ValueError):
        raise BoxFileError(
            f"{path}: {where}: box must be 4 numbers x0, y0, x1, y1, got {coords!r}"
        ) from None
    if len(vals) != 4:
        raise BoxFileError(f"{path}: {where}: box must be 4 numbers x0, y0, x1, y1, got {coords!r}")
    side = None if side in (None, "") else str(side).strip().lower()
    if side is not None and side not in SIDES:
        raise BoxFileError(f"{path}: {where}: side must be 'right' or 'left', got {side!r}")
    try:
        return Box(*vals, side=side, score=None if score is None else float(score))
    except (BoxError, ValueError) as e:
        raise BoxFileError(f"{path}: {where}: {e}") from None


def _frame_index(path: Path, where: str, value: Any) -> int:
    try:
        f = float(value)
    except (TypeError, ValueError):
        raise BoxFileError(f"{path}: {where}: frame must be an integer, got {value!r}") from None
    if not f.is_integer() or f < 0:
        raise BoxFileError(f"{path}: {where}: frame must be an integer >= 0, got {value!r}")
    return int(f)


def _read_csv_boxes(path: Path, text: str) -> dict[int, Box | None]:
    out: dict[int, Box | None] = {}
    rows = csv.reader(line for line in text.splitlines())
    for lineno, row in enumerate(rows, start=1):
        cells = [c.strip() for c in row]
        if not cells or not any(cells) or cells[0].startswith("#"):
            continue
        if lineno == 1 and cells[0].lower() == "frame":
            continue  # header
        where = f"line {lineno}"
        if len(cells) not in (5, 6):
            raise BoxFileError(
                f"{path}: {where}: expected 'frame,x0,y0,x1,y1[,side]', got {len(cells)} "
                f"columns: {','.join(cells)!r}"
            )
        k = _frame_index(path, where, cells[0])
        if k in out:
            raise BoxFileError(f"{path}: {where}: frame {k} is given twice")
        coords = None if not any(cells[1:5]) else cells[1:5]
        out[k] = _make_box(path, where, coords, cells[5] if len(cells) == 6 else None)
    return out


def _read_json_boxes(path: Path, text: str) -> dict[int, Box | None]:
    try:
        data = json.loads(text)
    except json.JSONDecodeError as e:
        raise BoxFileError(f"{path}: not valid JSON ({e})") from None
    out: dict[int, Box | None] = {}
    if isinstance(data, dict):
        items = [(k, {"box": v} if not isinstance(v, dict) else v) for k, v in data.items()]
    elif isinstance(data, list):
        items = []
        for i, rec in enumerate(data):
            if not isinstance(rec, dict) or "frame" not in rec:
                raise BoxFileError(f"{path}: record {i}: expected an object with 'frame' and 'box'")
            items.append((rec["frame"], rec))
    else:
        raise BoxFileError(f"{path}: expected a list of records or an object frame -> box")
    for key, rec in items:
        where = f"frame {key!r}"
        k = _frame_index(path, where, key)
        if k in out:
            raise BoxFileError(f"{path}: {where}: frame {k} is given twice")
        out[k] = _make_box(path, where, rec.get("box"), rec.get("side"), rec.get("score"))
    return out


def write_boxes(path: str | os.PathLike, boxes: Mapping[int, Box | None]) -> Path:
    """Write boxes in the CSV format of :func:`read_boxes` (e.g. to edit and re-run)."""
    path = Path(path)
    lines = ["frame,x0,y0,x1,y1,side"]
    for k in sorted(boxes):
        b = boxes[k]
        if b is None:
            lines.append(f"{k},,,,,")
        else:
            lines.append(f"{int(k)},{b.x0!r},{b.y0!r},{b.x1!r},{b.y1!r},{b.side or ''}")
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


class FirstOf:
    """The first box any of ``sources`` gives for a frame (e.g. a user box, else a detector)."""

    def __init__(self, *sources: BoxSource) -> None:
        self.sources = sources

    def __call__(self, index: int, frame: np.ndarray, previous: Observation | None) -> Box | None:
        for src in self.sources:
            b = src(index, frame, previous)
            if b is not None:
                return b
        return None


# --------------------------------------------------------------------------------------------
# Tracking from the previous prediction
# --------------------------------------------------------------------------------------------
JOINT_BOX_EXPAND = 1.12
"""The tight box of the 21 joints is smaller than the hand's (joints lie inside the skin): over
500 random poses and views of the built-in hand, the mesh's longer box side is 1.12x the
joints' (median; 5-95%: 1.04-1.24). Boxes made from joints (the tracker's, MediaPipe's
landmarks) are enlarged by this factor to match a tight hand box."""


@dataclasses.dataclass(frozen=True)
class TrackedBox(Box):
    """A box the :class:`Tracker` made from the previous frame's prediction: no detector and
    no user vouches for it, so the predictor checks that a hand is still in it (the
    ``fit_score`` of :mod:`seqhand.inference.presence`)."""


@dataclasses.dataclass
class Tracker:
    """Box of frame k from the predicted 2D joints of frame k - 1, started by another source.

    For frame k: if the previous frame had a hand, its joints' tight box (enlarged by
    ``expand``) is blended with the previous box,
    ``box = smoothing * previous_box + (1 - smoothing) * joint_box`` (centre and size), unless
    the track is lost; otherwise (first frame, no hand, lost track) ``start`` is asked. With
    ``refresh=N`` ``start`` is also asked on every N-th frame (``refresh=1`` or ``True``: every
    frame) and its box, when it has one, wins: user boxes stay authoritative (the tracker fills
    their gaps), and a detector pulls back a track that drifted - a weak model's joints can
    lead the box off the hand without breaking any lost-track rule.

    Lost-track rule - the joint box is refused when any of:

    * its longer side is below ``min_size`` pixels (collapsed prediction);
    * its centre lies outside the image;
    * its longer side changed by more than ``max_scale_change`` x (either way) from the
      previous box (a jump no real hand makes between frames);
    * the previous prediction carries a ``confidence`` below ``min_confidence``.

    Args:
        start: the source that starts the track: a :class:`BoxSource`, or a single
            :class:`Box` used for frame 0.
        smoothing: weight of the previous box in [0, 1) (0 = no smoothing).
        expand: factor applied to the joints' tight box (see :data:`JOINT_BOX_EXPAND`).
        refresh: ask ``start`` every ``refresh`` frames (``0``: only when there is no track)
            and prefer its boxes.
        min_size, max_scale_change, min_confidence: the lost-track rule.
    """

    start: BoxSource | Box | None = None
    smoothing: float = 0.3
    expand: float = JOINT_BOX_EXPAND
    refresh: int = 0
    min_size: float = 8.0
    max_scale_change: float = 2.0
    min_confidence: float = 0.0

    def __post_init__(self) -> None:
        if isinstance(self.start, Box):
            self.start = GivenBoxes({0: self.start})
        if not 0.0 <= self.smoothing < 1.0:
            raise ValueError(f"smoothing must lie in [0, 1), got {self.smoothing}")
        self.refresh = int(self.refresh)
        if self.refresh < 0:
            raise ValueError(f"refresh must be >= 0 frames, got {self.refresh}")

    def track(self, frame: np.ndarray, previous: Observation | None) -> Box | None:
        """The tracked box from ``previous``, or ``None`` when there is no track / it is lost."""
        if previous is None or not previous.found or previous.joints2d is None:
            return None
        prev_box = previous.box
        try:
            jb = Box.from_points(previous.joints2d).scaled(self.expand)
        except BoxError:
            return None
        h, w = frame.shape[:2]
        cx, cy = jb.center
        if jb.longer_side < self.min_size or not (-0.5 <= cx <= w - 0.5 and -0.5 <= cy <= h - 0.5):
            return None
        conf = getattr(previous, "confidence", None)
        if conf is not None and conf < self.min_confidence:
            return None
        side = prev_box.side if prev_box is not None else None
        if prev_box is None or prev_box.longer_side <= 0:
            return TrackedBox(jb.x0, jb.y0, jb.x1, jb.y1, side=side)
        ratio = jb.longer_side / prev_box.longer_side
        if not (1.0 / self.max_scale_change <= ratio <= self.max_scale_change):
            return None
        a = self.smoothing
        pcx, pcy = prev_box.center
        ncx, ncy = a * pcx + (1 - a) * cx, a * pcy + (1 - a) * cy
        nw = a * prev_box.width + (1 - a) * jb.width
        nh = a * prev_box.height + (1 - a) * jb.height
        return TrackedBox(ncx - nw / 2, ncy - nh / 2, ncx + nw / 2, ncy + nh / 2, side=side)

    def __call__(self, index: int, frame: np.ndarray, previous: Observation | None) -> Box | None:
        asked = self.refresh > 0 and index % self.refresh == 0 and self.start is not None
        if asked:
            b = self.start(index, frame, previous)
            if b is not None:
                return b
        b = self.track(frame, previous)
        if b is not None:
            return b
        if self.start is None or asked:
            return None
        return self.start(index, frame, previous)


@dataclasses.dataclass
class FixedSide:
    """Wrap a box source and set every box's side to ``side`` (``seqhand infer --side``):
    for when the side is known and a detector's handedness is not to be trusted (MediaPipe's
    can flip when a hand is seen from the back)."""

    source: BoxSource
    side: str

    def __post_init__(self) -> None:
        if self.side not in SIDES:
            raise BoxError(f"side must be one of {SIDES}, got {self.side!r}")

    def __call__(self, index: int, frame: np.ndarray, previous: Observation | None) -> Box | None:
        b = self.source(index, frame, previous)
        return None if b is None else dataclasses.replace(b, side=self.side)


# --------------------------------------------------------------------------------------------
# MediaPipe
# --------------------------------------------------------------------------------------------
def mediapipe_available() -> bool:
    """Whether the optional ``mediapipe`` package can be imported."""
    import importlib.util

    return importlib.util.find_spec("mediapipe") is not None


@contextlib.contextmanager
def _quiet_protobuf() -> Iterator[None]:
    """Silence protobuf's deprecation warning about mediapipe 0.10.14's own code."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*GetPrototype", category=UserWarning)
        yield


@contextlib.contextmanager
def _quiet_native() -> Iterator[None]:
    """Hide what MediaPipe's C++ side prints on stderr while it starts (glog / TFLite lines
    such as "Created TensorFlow Lite XNNPACK delegate"): file descriptor 2 goes to /dev/null
    for the duration; Python exceptions still propagate."""
    import sys

    try:
        sys.stderr.flush()
        saved = os.dup(2)
    except (OSError, ValueError):  # no real stderr (e.g. captured): nothing to hide
        yield
        return
    try:
        with open(os.devnull, "w") as null:
            os.dup2(null.fileno(), 2)
            yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)


class MediaPipeDetector:
    """MediaPipe's hand pipeline (palm detector + landmark model), offline, as a box source.

    Returns the tight box of the 21 landmarks of the most confident hand (in pixels), with the
    side and the handedness score. Works with either MediaPipe API:

    * ``mediapipe.solutions.hands`` (mediapipe <= 0.10.21 wheels, which ship the palm-detection
      and landmark models inside the wheel: nothing is downloaded). The ``detector`` extra pins
      0.10.14, the last of them that runs with numpy 2;
    * the Tasks API ``HandLandmarker`` (newer 0.10.x wheels ship no hand model: pass
      ``model_path`` = a ``hand_landmarker.task`` file you downloaded once).

    MediaPipe labels handedness as if the image were mirrored (a selfie camera). For ordinary
    (non-mirrored) footage set ``mirrored_input=False`` (default) and the label is swapped.

    Args:
        max_hands: hands MediaPipe looks for (the most confident is returned).
        min_confidence: detection confidence threshold in [0, 1].
        mirrored_input: the frames come from a mirrored (selfie) view.
        model_path: a ``hand_landmarker.task`` file for the Tasks API.
        model_complexity: 0 (lite) or 1 (full) for the solutions API.

    Raises:
        MissingExtraError: ``mediapipe`` is not installed.
        SeqhandError: the installed version has no bundled model and no ``model_path`` given.
    """

    def __init__(
        self,
        max_hands: int = 2,
        min_confidence: float = 0.5,
        mirrored_input: bool = False,
        model_path: str | os.PathLike | None = None,
        model_complexity: int = 1,
    ) -> None:
        os.environ.setdefault("GLOG_minloglevel", "2")  # before mediapipe loads its C++ side
        os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
        try:
            with _quiet_native():
                import mediapipe as mp
        except ImportError:
            raise MissingExtraError(
                "mediapipe", "detector", "the MediaPipe hand detector (--detector mediapipe)"
            ) from None
        self.mirrored_input = bool(mirrored_input)
        self._solution = None
        self._landmarker = None
        solutions = getattr(mp, "solutions", None)
        if model_path is None and solutions is not None and hasattr(solutions, "hands"):
            self._first = True
            with _quiet_protobuf(), _quiet_native():
                self._solution = solutions.hands.Hands(
                    static_image_mode=True,
                    max_num_hands=int(max_hands),
                    model_complexity=int(model_complexity),
                    min_detection_confidence=float(min_confidence),
                )
            return
        if model_path is None:
            raise SeqhandError(
                f"mediapipe {getattr(mp, '__version__', '?')} ships no hand model in its wheel "
                "(no mediapipe.solutions): pass a hand_landmarker.task file "
                "(--detector-model PATH), or install mediapipe 0.10.14 (pip install "
                "'seqhand[detector]'), or give boxes (--boxes)"
            )
        if not Path(model_path).is_file():
            raise SeqhandError(f"{model_path}: no such MediaPipe model file")
        from mediapipe.tasks.python import BaseOptions, vision

        opts = vision.HandLandmarkerOptions(
            base_options=BaseOptions(model_asset_path=str(model_path)),
            running_mode=vision.RunningMode.IMAGE,
            num_hands=int(max_hands),
            min_hand_detection_confidence=float(min_confidence),
        )
        self._mp = mp
        with _quiet_native():
            self._landmarker = vision.HandLandmarker.create_from_options(opts)

    def detect(self, frame: np.ndarray) -> list[Box]:
        """All hands in an ``(H, W, 3)`` uint8 RGB frame, most confident first."""
        img = np.ascontiguousarray(frame[..., :3], dtype=np.uint8)
        h, w = img.shape[:2]
        hands: list[tuple[np.ndarray, str, float]] = []
        if self._solution is not None:
            quiet = _quiet_native() if getattr(self, "_first", False) else contextlib.nullcontext()
            with _quiet_protobuf(), quiet:  # the first call prints the delegate's log lines
                res = self._solution.process(img)
            self._first = False
            for lms, hd in zip(res.multi_hand_landmarks or [], res.multi_handedness or []):
                pts = np.array([[p.x, p.y] for p in lms.landmark], dtype=np.float64)
                cls = hd.classification[0]
                hands.append((pts, cls.label, float(cls.score)))
        else:
            mp_img = self._mp.Image(image_format=self._mp.ImageFormat.SRGB, data=img)
            res = self._landmarker.detect(mp_img)
            for lms, hd in zip(res.hand_landmarks or [], res.handedness or []):
                pts = np.array([[p.x, p.y] for p in lms], dtype=np.float64)
                hands.append((pts, hd[0].category_name, float(hd[0].score)))
        return [self._to_box(p, label, score, w, h) for p, label, score in
                sorted(hands, key=lambda x: -x[2])]  # fmt: skip

    def _to_box(self, pts: np.ndarray, label: str, score: float, w: int, h: int) -> Box:
        # Landmarks are normalised to [0, 1] across the image's extent (edges, not centres).
        px = np.stack([pts[:, 0] * w - 0.5, pts[:, 1] * h - 0.5], axis=-1)
        side = str(label).strip().lower()
        side = side if side in SIDES else None
        if side is not None and not self.mirrored_input:
            side = "left" if side == "right" else "right"
        return Box.from_points(px, side=side, score=score).scaled(JOINT_BOX_EXPAND)

    def __call__(self, index: int, frame: np.ndarray, previous: Observation | None) -> Box | None:
        boxes = self.detect(frame)
        return boxes[0] if boxes else None

    def close(self) -> None:
        for obj in (self._solution, self._landmarker):
            if obj is not None and hasattr(obj, "close"):
                obj.close()


def box_is_usable(box: Box | None, frame_shape: tuple[int, ...], min_size: float = 2.0) -> bool:
    """A box the predictor can crop at: big enough, and overlapping the frame."""
    if box is None or not math.isfinite(box.longer_side) or box.longer_side < min_size:
        return False
    h, w = frame_shape[:2]
    return box.x1 > -0.5 and box.y1 > -0.5 and box.x0 < w - 0.5 and box.y0 < h - 0.5
