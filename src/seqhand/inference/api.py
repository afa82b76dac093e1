"""``seqhand.infer(path, checkpoint, ...)``: videos in, hands out - the one-liner behind
``seqhand infer``.

>>> import seqhand
>>> res = seqhand.infer("clip.mp4", "model.pt", box=(410, 220, 530, 360))   # doctest: +SKIP
>>> res.hands[0]["joints_cam"].shape, res.summary.processing_fps               # doctest: +SKIP

Several inputs (files, folders of frames, folders of videos) give a list of results; with
``out`` each input's files go to ``out`` (one input) or ``out/<input name>/`` (several).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from seqhand.errors import SeqhandError
from seqhand.geometry.crop import Box
from seqhand.inference.video import IMAGE_SUFFIXES

VIDEO_SUFFIXES = (".mp4", ".mov", ".avi", ".mkv", ".webm", ".m4v", ".mpg", ".mpeg", ".wmv")


def expand_inputs(inputs: str | os.PathLike | Sequence[str | os.PathLike]) -> list[Path]:
    """Files and folders -> the list of videos / frame folders to process.

    A folder with images is one input (its frames); a folder without images but with videos
    gives each video (sorted by name); anything else is passed through (and reported by the
    reader if it is not a video).

    Raises:
        SeqhandError: a folder holds neither images nor videos, or no input is given.
    """
    items = [inputs] if isinstance(inputs, str | os.PathLike) else list(inputs)
    if not items:
        raise SeqhandError("no input given: a video file, a folder of frames or of videos")
    out: list[Path] = []
    for item in items:
        p = Path(item)
        if p.is_dir():
            files = [f for f in p.iterdir() if f.is_file()]
            if any(f.suffix.lower() in IMAGE_SUFFIXES for f in files):
                out.append(p)
                continue
            vids = sorted(f for f in files if f.suffix.lower() in VIDEO_SUFFIXES)
            if not vids:
                raise SeqhandError(
                    f"{p}: no frames and no videos (expected images {', '.join(IMAGE_SUFFIXES)}"
                    f" or videos {', '.join(VIDEO_SUFFIXES)})"
                )
            out.extend(vids)
        else:
            out.append(p)
    return out


def output_dirs(inputs: list[Path], out: str | os.PathLike) -> list[Path]:
    """``out`` for one input; ``out/<name>`` for several (``name``, ``name-2``, ... if two
    inputs share a name)."""
    out = Path(out)
    if len(inputs) == 1:
        return [out]
    seen: dict[str, int] = {}
    dirs = []
    for p in inputs:
        name = p.stem if p.is_file() or p.suffix else p.name
        seen[name] = seen.get(name, 0) + 1
        dirs.append(out / (name if seen[name] == 1 else f"{name}-{seen[name]}"))
    return dirs


def parse_box(box: Any) -> Box:
    """``"x0,y0,x1,y1"``, a 4-sequence or a :class:`Box` -> a :class:`Box` (pixels)."""
    if isinstance(box, Box):
        return box
    try:
        vals = [float(v) for v in (box.split(",") if isinstance(box, str) else box)]
        if len(vals) != 4:
            raise ValueError
        return Box(*vals)
    except (ValueError, TypeError, SeqhandError):
        raise SeqhandError(
            f"--box must be 'x0,y0,x1,y1' in pixels of the first frame with x0 <= x1, "
            f"y0 <= y1, got {box!r}"
        ) from None


class _StartBox:
    """``detect`` for a single start box: frame 0 only, refused if it misses the image."""

    def __init__(self, box: Box, then=None) -> None:
        self.box, self.then = box, then

    def __call__(self, k, frame):
        from seqhand.inference.localize import box_is_usable

        if k == 0:
            if not box_is_usable(self.box, frame.shape):
                h, w = frame.shape[:2]
                raise SeqhandError(
                    f"--box {','.join(f'{v:g}' for v in self.box.as_array())} lies outside "
                    f"the first frame ({w} x {h} pixels) or is smaller than 2 pixels"
                )
            return [self.box]
        return [] if self.then is None else self.then(k, frame)


def build_hands_predictor(
    predictor,
    *,
    boxes: str | os.PathLike | dict | None = None,
    box: Any = None,
    detector: str | None = "auto",
    detector_model: str | None = None,
    mirrored: bool = False,
    track: bool = False,
    redetect: int = 10,
    detect_every_frame: bool = False,
    max_hands: int = 2,
    side: str | None = None,
    flip_after: int = 4,
):
    """The :class:`~seqhand.inference.hands.HandsPredictor` the options ask for.

    ``boxes`` (a file or frame -> box; one hand) are authoritative (asked every frame;
    ``track`` follows the hand where the file has none); ``box`` starts a track at frame 0 (then
    tracking, and the detector if ``detector`` is ``"mediapipe"``); otherwise the detector
    (``"auto"``: MediaPipe if installed, else an error saying what to give).
    """
    from seqhand.inference.hands import HandsPredictor, detections_from
    from seqhand.inference.localize import MediaPipeDetector, read_boxes

    if boxes is not None and box is not None:
        raise SeqhandError("give either boxes (--boxes FILE) or one box (--box), not both")
    if redetect < 0:
        raise SeqhandError(f"--redetect must be >= 0 frames, got {redetect}")
    if max_hands < 1:
        raise SeqhandError(f"--max-hands must be >= 1, got {max_hands}")
    kw = {"max_hands": max_hands, "side": side, "flip_after": flip_after}
    if boxes is not None:
        given = read_boxes(boxes) if not isinstance(boxes, dict) else boxes
        if not any(b is not None for b in given.values()):
            raise SeqhandError(f"{boxes}: the file holds no boxes")
        kw["max_hands"] = 1  # a boxes file describes one hand
        return HandsPredictor(predictor, detections_from(given), redetect=1, track=track, **kw)

    def make_detector():
        return MediaPipeDetector(max_hands=max_hands, mirrored_input=mirrored,
                                 model_path=detector_model)  # fmt: skip

    if box is not None:
        start = parse_box(box)
        det = detections_from(make_detector()) if detector == "mediapipe" else None
        return HandsPredictor(predictor, _StartBox(start, det), redetect=redetect, **kw)
    try:
        det = make_detector()
    except SeqhandError as e:
        if detector == "mediapipe":
            raise
        raise SeqhandError(
            f"no hand localisation: give --boxes FILE or --box x0,y0,x1,y1, or install the "
            f"detector ({e})"
        ) from None
    if detect_every_frame:
        return HandsPredictor(predictor, det, redetect=1, track=False, **kw)
    return HandsPredictor(predictor, det, redetect=redetect, **kw)


def infer(
    inputs: str | os.PathLike | Sequence[str | os.PathLike],
    checkpoint: str | os.PathLike,
    out: str | os.PathLike | None = None,
    *,
    boxes: str | os.PathLike | dict | None = None,
    box: Any = None,
    detector: str | None = "auto",
    max_hands: int = 2,
    side: str | None = None,
    focal: float | None = None,
    fov: float | None = None,
    min_confidence: float | None = None,
    meshes: str | None = None,
    videos: bool | None = None,
    overwrite: bool = False,
    runtime: str = "torch",
    onnx: str | None = None,
    per_frame: bool = False,
    progress: bool = False,
    fps: float | None = None,
    **options: Any,
):
    """Estimate the hands in one or several videos / frame folders.

    Args:
        inputs: a video, a folder of frames, a folder of videos, or a list of them.
        checkpoint: a seqhand model checkpoint (no trained weights ship with seqhand; see the
            README).
        out: where to write the files (``None``: results in memory only).
        boxes / box / detector: where the hands are (:func:`build_hands_predictor`).
        max_hands: hands followed at once (2).
        side: fix every hand's side (``"right"`` / ``"left"``).
        focal / fov: the camera (pixels / horizontal degrees; default 60 degrees).
        min_confidence: presence threshold for tracked boxes (default 0.2).
        meshes: ``"ply"`` / ``"obj"``: also write each hand's mesh per frame (needs ``out``).
        videos: write overlay videos (default: when ``out`` is given).
        overwrite: replace the files of an earlier run in ``out``.
        options: more of :func:`build_hands_predictor` (``redetect``, ``track``, ...).

    Returns:
        an :class:`~seqhand.inference.pipeline.InferenceResult` for one input, a list for
        several.
    """
    from seqhand.inference.pipeline import check_output_dir, infer_video
    from seqhand.inference.predictor import Predictor
    from seqhand.inference.video import open_frames

    single = isinstance(inputs, str | os.PathLike)
    paths = expand_inputs(inputs)
    for p in paths:
        if not p.exists():
            raise SeqhandError(f"{p}: no such file or folder")
    if not Path(checkpoint).is_file():
        raise SeqhandError(f"{checkpoint}: no such checkpoint file")
    dirs = output_dirs(paths, out) if out is not None else [None] * len(paths)
    for d in dirs:
        if d is not None:
            check_output_dir(d, overwrite)
    if meshes and out is None:
        raise SeqhandError("meshes need an output folder (out=...)")
    pred = Predictor.from_checkpoint(
        str(checkpoint), runtime=runtime, onnx=onnx, side=side or "right", per_frame=per_frame,
        focal=focal, fov=fov, min_confidence=min_confidence,
    )  # fmt: skip
    results = []
    for path, d in zip(paths, dirs):
        hands = build_hands_predictor(pred, boxes=boxes, box=box, detector=detector,
                                      max_hands=max_hands, side=side, **options)  # fmt: skip
        source = open_frames(path, fps=fps)
        write_videos = (d is not None) if videos is None else bool(videos)
        results.append(
            infer_video(
                source,
                hands,
                d,
                videos=write_videos,
                progress=progress,
                meshes=meshes,
                overwrite=overwrite,
            )  # fmt: skip
        )
    return results[0] if single and len(results) == 1 else results
