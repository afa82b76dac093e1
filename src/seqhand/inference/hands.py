"""Several hands at once: tracks with stable ids, each with its own recurrent state and side.

:class:`HandsPredictor` wraps a :class:`~seqhand.inference.predictor.Predictor` and runs it on
up to ``max_hands`` hands per frame. Each hand is a *track*: an id (0, 1, 2, ... in order of
appearance, never reused), the network's recurrent state, the previous output (the tracker
reads it), the hand's colour model (the presence check reads it) and a side decided over time.

Per frame ``k``:

1. every track proposes its box from its previous prediction (the
   :class:`~seqhand.inference.localize.Tracker` rule, a ``TrackedBox``);
2. detections (``detect(k, frame) -> [Box, ...]``: MediaPipe, a boxes file, a start box) are
   asked on every ``redetect``-th frame, when there is no track, when a track was lost, and
   while two tracked boxes overlap (IoU > 0.1: a crop may then show the other hand);
3. detections are matched to tracks (Hungarian assignment on the distance between a
   detection's centre and the track's predicted centre - previous centre plus its velocity -
   in units of the track's box side, gated at :data:`GATE` (none with ``max_hands=1``: the
   one hand is wherever the detector sees it), plus 0.5 when the detection's side disagrees
   with the track's); a matched detection's box wins over the tracked one;
4. unmatched detections start new tracks while fewer than ``max_hands`` are alive (duplicates
   of a live track, IoU > 0.3, are dropped);
5. each track is estimated; a tracked box that fails the presence check asks the detector
   once more in the same frame, and without a detection the track ends (``found=False`` in
   this frame, under its id).

**Handedness over time.** A track's side starts as its first detection says (else the
predictor's ``side``). A detection that disagrees counts against it; only ``flip_after``
disagreeing detections in a row (default 4) change the side (and restart the recurrent state:
the crop is now mirrored). A detector's handedness flipped for 1-3 frames changes nothing.
``side=`` fixes every track's side (``seqhand infer --side``).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Any

import numpy as np

from seqhand.geometry.crop import Box, Side
from seqhand.inference.localize import Tracker, box_is_usable
from seqhand.inference.predictor import (
    FrameOutput,
    Predictor,
    PredictorError,
    PredictorState,
    _check_frame,
)

GATE = 2.0
"""A detection farther than this many box sides from a track's predicted centre is not it."""

Detect = Callable[[int, np.ndarray], list[Box]]
"""``detect(index, frame) -> boxes``: every hand found in frame ``index`` (may be empty)."""


def detections_from(source: Any) -> Detect:
    """Turn what a user has into a :data:`Detect`: a detector with ``detect(frame)``
    (:class:`~seqhand.inference.localize.MediaPipeDetector`), a mapping frame -> box (or list
    of boxes), a single :class:`Box` (frame 0), a function ``(index, frame) -> boxes``, or a
    one-box ``BoxSource`` ``(index, frame, previous) -> Box | None``."""
    if isinstance(source, Box):
        return lambda k, frame: [source] if k == 0 else []
    if isinstance(source, Mapping):

        def given(k: int, frame: np.ndarray) -> list[Box]:
            b = source.get(int(k))
            if b is None:
                return []
            return [b] if isinstance(b, Box) else list(b)

        return given
    if hasattr(source, "detect"):
        return lambda k, frame: list(source.detect(frame))
    if callable(source) and _n_args(source) == 2:
        return source
    if callable(source):

        def one(k: int, frame: np.ndarray) -> list[Box]:
            b = source(k, frame, None)
            return [] if b is None else [b]

        return one
    raise PredictorError(f"cannot find hands with {type(source).__name__}")


def _n_args(fn: Any) -> int:
    import inspect

    try:
        params = inspect.signature(fn).parameters.values()
    except (TypeError, ValueError):
        return -1
    return sum(p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD) for p in params)


@dataclasses.dataclass
class Track:
    """One hand followed over frames (module docstring)."""

    id: int
    state: PredictorState
    side: Side
    contrary: int = 0
    velocity: np.ndarray = dataclasses.field(default_factory=lambda: np.zeros(2))

    @property
    def box(self) -> Box | None:
        prev = self.state.previous
        return None if prev is None else prev.box


@dataclasses.dataclass
class HandsState:
    """What :meth:`HandsPredictor.step` carries between frames: the live tracks, the next
    track id, the next frame index."""

    tracks: list[Track] = dataclasses.field(default_factory=list)
    next_id: int = 0
    index: int = 0


def _overlapping(boxes: list[Box], threshold: float = 0.1) -> bool:
    return any(iou(a, b) > threshold for i, a in enumerate(boxes) for b in boxes[i + 1 :])


def iou(a: Box, b: Box) -> float:
    """Intersection over union of two boxes (pixel-edge extents, ``[x0 - .5, x1 + .5]``)."""
    ix = min(a.x1, b.x1) - max(a.x0, b.x0) + 1.0
    iy = min(a.y1, b.y1) - max(a.y0, b.y0) + 1.0
    if ix <= 0 or iy <= 0:
        return 0.0
    inter = ix * iy
    area = (a.width + 1.0) * (a.height + 1.0) + (b.width + 1.0) * (b.height + 1.0)
    return float(inter / (area - inter))


class HandsPredictor:
    """Up to ``max_hands`` hands per frame with stable ids (module docstring).

    Args:
        predictor: the single-hand predictor (network, hand model, crops, presence check).
        detect: where hands are: a :data:`Detect` or anything :func:`detections_from` takes;
            ``None``: only tracks started by :meth:`step`'s ``boxes``.
        max_hands: at most this many tracks at once.
        redetect: ask ``detect`` every N frames while tracking (1: every frame, the detector
            is authoritative; 0: only when there is no track or one was lost).
        track: follow hands between detections (``False``: a hand is where ``detect`` says,
            and nowhere else - user boxes without ``--track``).
        side: fix every hand's side (``None``: decided over time from the detections).
        flip_after: disagreeing detections in a row that change a track's side.
        tracker: the box-from-previous-joints rule (default :class:`Tracker` defaults).
    """

    def __init__(
        self,
        predictor: Predictor,
        detect: Any = None,
        *,
        max_hands: int = 2,
        redetect: int = 10,
        track: bool = True,
        side: Side | None = None,
        flip_after: int = 4,
        tracker: Tracker | None = None,
    ) -> None:
        if int(max_hands) < 1:
            raise PredictorError(f"max_hands must be >= 1, got {max_hands}")
        if int(redetect) < 0:
            raise PredictorError(f"redetect must be >= 0 frames, got {redetect}")
        if int(flip_after) < 1:
            raise PredictorError(f"flip_after must be >= 1 detections, got {flip_after}")
        if side not in (None, "right", "left"):
            raise PredictorError(f"side must be 'right', 'left' or None, got {side!r}")
        self.predictor = predictor
        self.detect = None if detect is None else detections_from(detect)
        self.max_hands = int(max_hands)
        self.redetect = int(redetect)
        self.track = bool(track)
        self.side = side
        self.flip_after = int(flip_after)
        self.tracker = tracker or Tracker()

    # ------------------------------------------------------------------------------------
    def run(self, frames: Iterable[np.ndarray]) -> Iterator[list[FrameOutput]]:
        """One list of :class:`FrameOutput` (one per live track, by id) per frame."""
        state = HandsState()
        for frame in frames:
            outs, state = self.step(frame, state)
            yield outs

    def step(
        self, frame: np.ndarray, state: HandsState | None = None
    ) -> tuple[list[FrameOutput], HandsState]:
        """One frame -> the outputs of every track alive in it (sorted by id), new state.

        A track that ends in this frame appears once more with ``found=False``.
        """
        img = _check_frame(frame)
        st = state if state is not None else HandsState()
        k = st.index
        tracks = list(st.tracks)
        props = {t.id: (self.tracker.track(img, t.state.previous) if self.track else None)
                 for t in tracks}  # fmt: skip
        due = self.detect is not None and (
            not tracks
            or (self.redetect > 0 and k % self.redetect == 0)
            or any(p is None for p in props.values())
            or _overlapping([p for p in props.values() if p is not None])
        )
        dets = self._detections(k, img) if due else []
        matched, free = self._match(tracks, dets)
        outs: list[FrameOutput] = []
        alive: list[Track] = []
        next_id = st.next_id
        for t in tracks:
            det = matched.get(t.id)
            if det is not None:
                self._vote(t, det.side)
            box = det if det is not None else props[t.id]
            out = None
            if box is not None:
                saved = t.state
                out = self._estimate(img, t, box, k)
                if not out.found and det is None and self.detect is not None and not due:
                    # the tracked box lost the hand: ask the detector now
                    dets = self._detections(k, img)
                    due = True
                    m, free = self._match([t], dets)
                    if t.id in m:
                        t.state = saved
                        self._vote(t, m[t.id].side)
                        out = self._estimate(img, t, m[t.id], k)
            if out is None:
                out = FrameOutput(index=k, found=False, box=box, reset=True, track_id=t.id)
            outs.append(out)
            if out.found:
                alive.append(t)
        # new hands
        for det in sorted(free, key=lambda b: -(b.score or 0.0)):
            if len(alive) >= self.max_hands:
                break
            if any(t.box is not None and iou(t.box, det) > 0.3 for t in alive):
                continue
            side = self.side or det.side or self.predictor.side
            t = Track(next_id, PredictorState(), side)
            next_id += 1
            out = self._estimate(img, t, det, k)
            outs.append(out)
            if out.found:
                alive.append(t)
        outs.sort(key=lambda o: o.track_id)
        return outs, HandsState(alive, next_id, k + 1)

    # ------------------------------------------------------------------------------------
    def _detections(self, k: int, img: np.ndarray) -> list[Box]:
        return [b for b in self.detect(k, img) if box_is_usable(b, img.shape)]

    def _vote(self, t: Track, seen: Side | None) -> None:
        """Count a detection's side for the track; flip after ``flip_after`` in a row."""
        if self.side is not None or seen is None:
            return
        if seen == t.side:
            t.contrary = 0
            return
        t.contrary += 1
        if t.contrary >= self.flip_after:
            t.side, t.contrary = seen, 0
            t.state = dataclasses.replace(t.state, model_state=None, previous=None)

    def _estimate(self, img: np.ndarray, t: Track, box: Box, k: int) -> FrameOutput:
        side = self.side or t.side
        box = dataclasses.replace(box, side=side)
        prev = t.state.previous
        restart = self.predictor.per_frame or prev is None or not prev.found
        out, ms = self.predictor.estimate(
            img, box, side, None if restart else t.state.model_state, k, restart,
            track_id=t.id, colours=t.state.colours,
        )  # fmt: skip
        colours = self.predictor.learn_colours(img, out, t.state.colours)
        if out.found and prev is not None and prev.found and prev.box is not None:
            step = np.subtract(box.center, prev.box.center)
            t.velocity = 0.5 * t.velocity + 0.5 * step
        t.state = PredictorState(ms if out.found else None, out, k + 1, colours)
        return out

    def _match(self, tracks: list[Track], dets: list[Box]):
        """Assign detections to tracks; returns ``({track id: box}, unmatched boxes)``."""
        if not dets or not tracks:
            return {}, list(dets)
        from scipy.optimize import linear_sum_assignment

        big = 1e6
        cost = np.full((len(tracks), len(dets)), big)
        for i, t in enumerate(tracks):
            ref = t.box
            if ref is None:
                continue
            c = np.add(ref.center, t.velocity)
            side = max(ref.longer_side, 1.0)
            for j, d in enumerate(dets):
                dist = float(np.hypot(*(np.subtract(d.center, c)))) / side
                if dist < GATE or self.max_hands == 1:
                    clash = d.side is not None and self.side is None and d.side != t.side
                    cost[i, j] = dist + 0.5 * clash
        rows, cols = linear_sum_assignment(cost)
        matched = {tracks[i].id: dets[j] for i, j in zip(rows, cols) if cost[i, j] < big}
        used = {j for i, j in zip(rows, cols) if cost[i, j] < big}
        return matched, [d for j, d in enumerate(dets) if j not in used]
