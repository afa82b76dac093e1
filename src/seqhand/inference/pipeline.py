"""A whole video through the predictor, written to a folder: results, overlay, 3D view.

``infer_video(source, predictor, out_dir)`` writes

=========================  =================================================================
``results.npz``            per frame (N = frames read): ``found (N,)``, ``params (N, 26)``,
                           ``joints3d (N, 21, 3)`` m, ``vertices3d (N, V, 3)`` m,
                           ``joints2d (N, 21, 2)`` px, ``vertices2d (N, V, 2)`` px,
                           ``boxes (N, 4)`` px, ``scale (N,)`` px/m, ``confidence (N,)``,
                           ``left (N,)``, ``reset (N,)``, ``faces (F, 3)``, ``fps``; NaN where
                           a frame has no hand
``results.jsonl``          one JSON record per frame (no vertices), see
                           :meth:`FrameOutput.to_record`
``summary.json``           input, counts, frames without a hand, unreadable frames, problems,
                           ``complete`` (the whole input was processed)
``overlay.mp4``            the frames with the mesh, skeleton and box drawn (H.264)
``side_by_side.mp4``       the overlay next to a fixed side view of the mesh
=========================  =================================================================

Every file is written under a temporary name and renamed when the run ends, so a file with
its final name is never half-written. A run that stops early (a truncated video, Ctrl-C) still
writes the frames it processed, and ``summary.json`` says so (``complete: false``).
"""

from __future__ import annotations

import dataclasses
import json
import os
from pathlib import Path

import numpy as np

from seqhand.conventions import NUM_JOINTS, OUTPUT_DIM
from seqhand.inference.overlay import overlay_frame, side_by_side
from seqhand.inference.predictor import FrameOutput, Predictor, PredictorState
from seqhand.inference.video import FrameSource, VideoWriter

RESULT_FILES = ("results.npz", "results.jsonl", "summary.json")
VIDEO_FILES = ("overlay.mp4", "side_by_side.mp4")
PARTIAL = ".partial"


@dataclasses.dataclass
class InferenceSummary:
    """What a run did (also written as ``summary.json``)."""

    input: str
    frames: int
    frames_with_hand: int
    no_hand_frames: list[int]
    unreadable_frames: list[int]
    problems: list[str]
    complete: bool
    interrupted: bool
    fps: float
    runtime: str
    per_frame: bool
    files: list[str]

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


class ResultWriter:
    """Collect :class:`FrameOutput` s and write the result files atomically at :meth:`close`.

    ``results.jsonl`` is streamed to a temporary file while frames arrive; the arrays are
    gathered in memory (about 20 KB per frame) and written once.
    """

    def __init__(self, out_dir: str | os.PathLike, num_vertices: int, faces: np.ndarray) -> None:
        self.out_dir = Path(out_dir)
        self.out_dir.mkdir(parents=True, exist_ok=True)
        self.num_vertices = int(num_vertices)
        self.faces = np.asarray(faces)
        self.rows: list[FrameOutput] = []
        self._jsonl_path = self.out_dir / ("results.jsonl" + PARTIAL)
        self._jsonl = open(self._jsonl_path, "w", encoding="utf-8")

    def add(self, out: FrameOutput, extra: dict | None = None) -> None:
        rec = out.to_record()
        if extra:
            rec.update(extra)
        self._jsonl.write(json.dumps(rec) + "\n")
        self.rows.append(out)

    def arrays(self) -> dict[str, np.ndarray]:
        n, v = len(self.rows), self.num_vertices
        nan = np.float32("nan")
        a = {
            "frame": np.arange(n, dtype=np.int64),
            "found": np.zeros(n, bool),
            "left": np.zeros(n, bool),
            "reset": np.zeros(n, bool),
            "params": np.full((n, OUTPUT_DIM), nan, np.float32),
            "joints3d": np.full((n, NUM_JOINTS, 3), nan, np.float32),
            "vertices3d": np.full((n, v, 3), nan, np.float32),
            "joints2d": np.full((n, NUM_JOINTS, 2), nan, np.float32),
            "vertices2d": np.full((n, v, 2), nan, np.float32),
            "boxes": np.full((n, 4), nan, np.float32),
            "scale": np.full(n, nan, np.float32),
            "confidence": np.full(n, nan, np.float32),
        }
        for i, o in enumerate(self.rows):
            a["frame"][i] = o.index
            a["reset"][i] = o.reset
            if o.box is not None:
                a["boxes"][i] = o.box.as_array()
            if not o.found:
                continue
            a["found"][i] = True
            a["left"][i] = o.side == "left"
            for k in ("params", "joints3d", "vertices3d", "joints2d", "vertices2d"):
                a[k][i] = getattr(o, k)
            a["scale"][i] = o.scale
            if o.confidence is not None:
                a["confidence"][i] = o.confidence
        a["faces"] = self.faces
        return a

    def close(self, summary: InferenceSummary, rename: bool = True) -> list[Path]:
        """Write ``results.npz`` and ``summary.json``, then give every file its final name."""
        self._jsonl.close()
        arrays = self.arrays()
        arrays["fps"] = np.float64(summary.fps)
        npz_tmp = self.out_dir / ("results.npz" + PARTIAL)
        with open(npz_tmp, "wb") as fh:
            np.savez_compressed(fh, **arrays)
        sum_tmp = self.out_dir / ("summary.json" + PARTIAL)
        sum_tmp.write_text(json.dumps(summary.to_dict(), indent=2) + "\n", encoding="utf-8")
        done = []
        for tmp, name in ((self._jsonl_path, "results.jsonl"), (npz_tmp, "results.npz"),
                          (sum_tmp, "summary.json")):  # fmt: skip
            if rename:
                os.replace(tmp, self.out_dir / name)
                done.append(self.out_dir / name)
        return done

    def abort(self) -> None:
        self._jsonl.close()
        self._jsonl_path.unlink(missing_ok=True)


def infer_video(
    source: FrameSource,
    predictor: Predictor,
    out_dir: str | os.PathLike,
    *,
    videos: bool = True,
    side_view: bool = True,
    progress: bool = True,
    crf: int = 20,
) -> InferenceSummary:
    """Run ``predictor`` over ``source`` and write the result files (module docstring).

    Frames that cannot be read are recorded (``unreadable_frames``) and start a new sequence;
    frames without a hand are recorded (``no_hand_frames``). A truncated input or Ctrl-C ends
    the run early with everything processed so far written (``complete: false``).

    Raises:
        VideoInputError: the input gave no frame at all (nothing is written).
    """
    from seqhand.inference.video import VideoInputError

    out_dir = Path(out_dir)
    faces = predictor.faces
    writer: ResultWriter | None = None
    vids: dict[str, VideoWriter] = {}
    state = PredictorState()
    no_hand, unreadable = [], []
    interrupted = False
    first_shape = None
    bar = None
    try:
        if progress:
            from tqdm import tqdm

            bar = tqdm(total=source.expected_frames, unit="frame", desc="infer")
        for k, frame in source:
            if writer is None:
                writer = ResultWriter(out_dir, predictor.hand_layer.num_vertices, faces)
            if frame is None:  # unreadable: no prediction; the next frame starts a sequence
                out = FrameOutput(index=k, found=False, reset=True)
                state = PredictorState(None, out, k + 1)
                unreadable.append(k)
                writer.add(out, {"unreadable": True})
                if bar is not None:
                    bar.update(1)
                continue
            out, state = predictor.step(frame, dataclasses.replace(state, index=k))
            writer.add(out)
            if not out.found:
                no_hand.append(k)
            if videos:
                first_shape = first_shape or frame.shape[:2]
                over = _fit(overlay_frame(frame, out, faces), first_shape)
                _video(vids, out_dir, "overlay.mp4", source.fps, crf).write(over)
                if side_view:
                    sbs = side_by_side(over, out, faces)
                    _video(vids, out_dir, "side_by_side.mp4", source.fps, crf).write(sbs)
            if bar is not None:
                bar.update(1)
    except KeyboardInterrupt:
        interrupted = True
    except BaseException:
        for v in vids.values():
            v.close()
            v.path.unlink(missing_ok=True)
        if writer is not None:
            writer.abort()
        raise
    finally:
        if bar is not None:
            bar.close()
    if writer is None:
        problems = "; ".join(source.problems) or "no frames"
        raise VideoInputError(f"{source.name}: no frame could be read ({problems})")
    files = []
    for name, v in vids.items():
        v.close()
        os.replace(v.path, out_dir / name)
        files.append(name)
    for name in VIDEO_FILES:  # a previous run's videos would not match these results
        if name not in files:
            (out_dir / name).unlink(missing_ok=True)
    n = len(writer.rows)
    problems = list(source.problems)
    if interrupted:
        problems.append(f"interrupted by the user after {n} frames")
    summary = InferenceSummary(
        input=source.name,
        frames=n,
        frames_with_hand=int(sum(o.found for o in writer.rows)),
        no_hand_frames=no_hand,
        unreadable_frames=unreadable,
        problems=problems,
        complete=not (interrupted or source.truncated),
        interrupted=interrupted,
        fps=source.fps,
        runtime=predictor.runtime,
        per_frame=predictor.per_frame,
        files=sorted(RESULT_FILES + tuple(files)),
    )
    writer.close(summary)
    return summary


def _fit(img: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """Crop / pad (black) ``img`` to ``shape``: a video needs one frame size throughout."""
    h, w = shape
    if img.shape[:2] == (h, w):
        return img
    out = np.zeros((h, w, 3), np.uint8)
    hh, ww = min(h, img.shape[0]), min(w, img.shape[1])
    out[:hh, :ww] = img[:hh, :ww]
    return out


def _video(vids: dict, out_dir: Path, name: str, fps: float, crf: int) -> VideoWriter:
    if name not in vids:
        vids[name] = VideoWriter(out_dir / (name + PARTIAL), fps, crf, container="mp4")
    return vids[name]


def load_results(out_dir: str | os.PathLike) -> dict[str, np.ndarray]:
    """Read ``results.npz`` of a run back as a dict of arrays."""
    with np.load(Path(out_dir) / "results.npz", allow_pickle=False) as z:
        return {k: z[k] for k in z.files}
