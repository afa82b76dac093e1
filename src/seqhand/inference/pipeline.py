"""A whole video through the predictor, written to a folder: results, overlay, 3D view, meshes.

``infer_video(source, predictor, out_dir)`` runs a :class:`~seqhand.inference.hands.
HandsPredictor` (up to N hands, each a track with an id) or a single-hand
:class:`~seqhand.inference.predictor.Predictor` (track 0) and writes

=========================  =================================================================
``results.npz``            ``frame (N,)``, ``faces (F, 3)``, ``input_fps``, ``track_ids (K,)``,
                           the camera (``focal``, ``cx``, ``cy`` px, ``focal_assumed``) and per
                           track id ``i`` the arrays ``hand{i}/<name>`` (N = frames read,
                           :data:`HAND_ARRAYS`); NaN where that hand was not found
``results.jsonl``          one JSON record per frame: ``{"frame", "hands": [...]}``, each hand
                           as :meth:`FrameOutput.to_record` (no vertices)
``summary.json``           input, counts, per-hand frames and sides, frames without a hand,
                           unreadable frames, problems, ``complete``, ``input_fps``,
                           ``processing_fps``, ``seconds``, the camera
``overlay.mp4``            the frames with each hand's mesh, skeleton and box, coloured by id
``side_by_side.mp4``       the overlay next to a fixed side view of the meshes
``meshes/hand{i}/``        with ``meshes="ply"|"obj"``: the camera-space mesh of every frame
                           with that hand, ``frame{k:06d}.ply`` (metres)
=========================  =================================================================

Every file is written under a temporary name and renamed when the run ends, so a file with
its final name is never half-written. A run that stops early (a truncated video, Ctrl-C) still
writes the frames it processed, and ``summary.json`` says so (``complete: false``). A folder
that already holds a run's files is refused (:class:`OutputExistsError`) unless
``overwrite=True``; then files of the earlier run that this run does not make again (e.g. its
videos, after ``videos=False``) are removed and listed in ``summary.json`` (``removed``).
"""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import time
from pathlib import Path

import numpy as np

from seqhand.conventions import NUM_JOINTS, OUTPUT_DIM
from seqhand.errors import MissingExtraError, SeqhandError
from seqhand.inference.overlay import overlay_hands, side_by_side
from seqhand.inference.predictor import FrameOutput, Predictor, PredictorState
from seqhand.inference.video import FrameSource, VideoWriter

RESULT_FILES = ("results.npz", "results.jsonl", "summary.json")
VIDEO_FILES = ("overlay.mp4", "side_by_side.mp4")
MESH_DIR = "meshes"
MESH_FORMATS = ("ply", "obj")
PARTIAL = ".partial"
HAND_ARRAYS = {
    # name: (shape after N, fill) - see docs/inference.md for units and frames
    "found": ((), False),
    "left": ((), False),
    "reset": ((), False),
    "confidence": ((), 0.0),
    "detector_score": ((), np.nan),
    "fit_score": ((), np.nan),
    "params": ((OUTPUT_DIM,), np.nan),
    "joints3d": ((NUM_JOINTS, 3), np.nan),
    "vertices3d": (("V", 3), np.nan),
    "joints2d": ((NUM_JOINTS, 2), np.nan),
    "vertices2d": (("V", 2), np.nan),
    "boxes": ((4,), np.nan),
    "scale": ((), np.nan),
    "root_cam": ((3,), np.nan),
    "joints_cam": ((NUM_JOINTS, 3), np.nan),
    "vertices_cam": (("V", 3), np.nan),
    "mano_global_orient": ((3,), np.nan),
    "mano_hand_pose": ((45,), np.nan),
    "mano_betas": ((10,), np.nan),
    "mano_transl": ((3,), np.nan),
}


class OutputExistsError(SeqhandError):
    """The output folder holds the files of an earlier run."""


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
    input_fps: float
    processing_fps: float
    seconds: float
    runtime: str
    per_frame: bool
    hands: dict
    camera: dict
    files: list[str]
    removed: list[str] = dataclasses.field(default_factory=list)

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


@dataclasses.dataclass
class InferenceResult:
    """A run's results in memory (what :func:`seqhand.infer` returns).

    Attributes:
        summary: the :class:`InferenceSummary`.
        arrays: as ``results.npz`` / :func:`load_results`: top-level arrays and ``hands``,
            ``{track id: {name: (N, ...) array}}``.
        outputs: per frame, the list of :class:`FrameOutput` (one per hand).
        out_dir: where the files were written (``None``: nothing written).
    """

    summary: InferenceSummary
    arrays: dict
    outputs: list[list[FrameOutput]]
    out_dir: Path | None = None

    @property
    def hands(self) -> dict[int, dict[str, np.ndarray]]:
        return self.arrays["hands"]


def existing_outputs(out_dir: str | os.PathLike) -> list[str]:
    """The files / folders of an earlier run in ``out_dir``."""
    d = Path(out_dir)
    if not d.is_dir():
        return []
    names = RESULT_FILES + VIDEO_FILES + (MESH_DIR,)
    return [n for n in names if (d / n).exists()]


def check_output_dir(out_dir: str | os.PathLike, overwrite: bool = False) -> None:
    """Refuse a folder holding an earlier run's files unless ``overwrite``."""
    old = existing_outputs(out_dir)
    if old and not overwrite:
        raise OutputExistsError(
            f"{out_dir}: holds the results of an earlier run ({', '.join(old)}); choose "
            "another output folder or pass --overwrite (overwrite=True)"
        )


class ResultWriter:
    """Collect each frame's hands; write the result files atomically at :meth:`close`.

    ``results.jsonl`` is streamed to a temporary file while frames arrive (when writing); the
    arrays are gathered in memory (about 30 KB per hand and frame).
    """

    def __init__(self, out_dir: str | os.PathLike | None, num_vertices: int,
                 faces: np.ndarray) -> None:  # fmt: skip
        self.out_dir = None if out_dir is None else Path(out_dir)
        self.num_vertices = int(num_vertices)
        self.faces = np.asarray(faces)
        self.rows: list[list[FrameOutput]] = []
        self.camera = None
        self._jsonl = None
        if self.out_dir is not None:
            self.out_dir.mkdir(parents=True, exist_ok=True)
            self._jsonl_path = self.out_dir / ("results.jsonl" + PARTIAL)
            self._jsonl = open(self._jsonl_path, "w", encoding="utf-8")

    def add(self, index: int, outs: list[FrameOutput], extra: dict | None = None) -> None:
        for o in outs:
            if o.camera is not None:
                self.camera = o.camera
        if self._jsonl is not None:
            rec = {"frame": int(index), "hands": [o.to_record() for o in outs]}
            if extra:
                rec.update(extra)
            self._jsonl.write(json.dumps(rec) + "\n")
        self.rows.append(outs)

    def track_ids(self) -> list[int]:
        return sorted({o.track_id for outs in self.rows for o in outs})

    def arrays(self) -> dict:
        n, v = len(self.rows), self.num_vertices
        hands = {}
        for tid in self.track_ids():
            a = {}
            for name, (shape, fill) in HAND_ARRAYS.items():
                shp = (n,) + tuple(v if d == "V" else d for d in shape)
                dt = bool if isinstance(fill, bool) else np.float32
                a[name] = np.full(shp, fill, dt)
            for i, outs in enumerate(self.rows):
                for o in outs:
                    if o.track_id == tid:
                        _fill(a, i, o)
            hands[tid] = a
        out = {"frame": np.arange(n, dtype=np.int64), "faces": self.faces,
               "track_ids": np.array(sorted(hands), np.int64), "hands": hands}  # fmt: skip
        cam = self.camera
        out["focal"] = np.float64(np.nan if cam is None else cam.focal)
        out["cx"] = np.float64(np.nan if cam is None else cam.cx)
        out["cy"] = np.float64(np.nan if cam is None else cam.cy)
        out["focal_assumed"] = np.bool_(cam is not None and cam.assumed)
        return out

    def close(self, summary: InferenceSummary) -> tuple[dict, list[Path]]:
        """Write ``results.npz`` and ``summary.json``, then give every file its final name."""
        arrays = self.arrays()
        arrays["input_fps"] = np.float64(summary.input_fps)
        if self.out_dir is None:
            return arrays, []
        self._jsonl.close()
        flat = {k: v for k, v in arrays.items() if k != "hands"}
        for tid, a in arrays["hands"].items():
            flat.update({f"hand{tid}/{k}": x for k, x in a.items()})
        npz_tmp = self.out_dir / ("results.npz" + PARTIAL)
        with open(npz_tmp, "wb") as fh:
            np.savez_compressed(fh, **flat)
        sum_tmp = self.out_dir / ("summary.json" + PARTIAL)
        sum_tmp.write_text(json.dumps(summary.to_dict(), indent=2) + "\n", encoding="utf-8")
        done = []
        for tmp, name in ((self._jsonl_path, "results.jsonl"), (npz_tmp, "results.npz"),
                          (sum_tmp, "summary.json")):  # fmt: skip
            os.replace(tmp, self.out_dir / name)
            done.append(self.out_dir / name)
        return arrays, done

    def abort(self) -> None:
        if self._jsonl is not None:
            self._jsonl.close()
            self._jsonl_path.unlink(missing_ok=True)


def _fill(a: dict, i: int, o: FrameOutput) -> None:
    if o.box is not None:
        a["boxes"][i] = o.box.as_array()
    a["reset"][i] = o.reset
    if o.fit_score is not None:
        a["fit_score"][i] = o.fit_score
    if o.detector_score is not None:
        a["detector_score"][i] = o.detector_score
    if not o.found:
        return
    a["found"][i] = True
    a["left"][i] = o.side == "left"
    a["confidence"][i] = o.confidence
    for k in ("params", "joints3d", "vertices3d", "joints2d", "vertices2d", "root_cam",
              "joints_cam", "vertices_cam"):  # fmt: skip
        x = getattr(o, k)
        if x is not None:
            a[k][i] = x
    a["scale"][i] = o.scale
    if o.mano is not None:
        for k, x in o.mano.items():
            a["mano_" + k][i] = x


class _MeshWriter:
    """Camera-space meshes, one file per hand and frame, under ``meshes.partial/``."""

    def __init__(self, out_dir: Path, fmt: str, faces: np.ndarray) -> None:
        if fmt not in MESH_FORMATS:
            raise SeqhandError(f"mesh format must be one of {MESH_FORMATS}, got {fmt!r}")
        try:
            import trimesh
        except ImportError:
            raise MissingExtraError("trimesh", "mesh", "mesh export (--meshes)") from None
        self.trimesh = trimesh
        self.root = out_dir / (MESH_DIR + PARTIAL)
        shutil.rmtree(self.root, ignore_errors=True)
        self.fmt, self.faces = fmt, np.asarray(faces)

    def add(self, outs: list[FrameOutput]) -> None:
        for o in outs:
            if not o.found or o.vertices_cam is None:
                continue
            d = self.root / f"hand{o.track_id}"
            d.mkdir(parents=True, exist_ok=True)
            f = self.faces[:, ::-1] if o.side == "left" else self.faces
            mesh = self.trimesh.Trimesh(o.vertices_cam, f, process=False)
            mesh.export(d / f"frame{o.index:06d}.{self.fmt}")

    def finish(self, out_dir: Path) -> None:
        if self.root.exists():
            os.replace(self.root, out_dir / MESH_DIR)

    def abort(self) -> None:
        shutil.rmtree(self.root, ignore_errors=True)


class _Single:
    """A single-hand :class:`Predictor` seen as a list-of-hands stepper (track 0)."""

    def __init__(self, predictor: Predictor) -> None:
        self.predictor = predictor

    def step(self, frame, state):
        out, state = self.predictor.step(frame, state)
        return [out], state

    def restart(self, index: int):
        return PredictorState(index=index + 1)

    def at(self, state, index):
        return dataclasses.replace(state or PredictorState(), index=index)


class _Multi:
    def __init__(self, hands) -> None:
        self.hands = hands
        self.predictor = hands.predictor

    def step(self, frame, state):
        return self.hands.step(frame, state)

    def restart(self, index: int):
        from seqhand.inference.hands import HandsState

        return HandsState(index=index + 1)

    def at(self, state, index):
        from seqhand.inference.hands import HandsState

        return dataclasses.replace(state or HandsState(), index=index)


def infer_video(
    source: FrameSource,
    predictor,
    out_dir: str | os.PathLike | None = None,
    *,
    videos: bool = True,
    side_view: bool = True,
    progress: bool = True,
    crf: int = 20,
    meshes: str | None = None,
    overwrite: bool = False,
) -> InferenceResult:
    """Run ``predictor`` over ``source`` and write the result files (module docstring).

    Args:
        source: the frames (:func:`~seqhand.inference.video.open_frames`).
        predictor: a :class:`~seqhand.inference.hands.HandsPredictor`, or a single-hand
            :class:`Predictor` (with its box source).
        out_dir: the output folder; ``None`` keeps everything in memory (no videos, meshes).
        videos, side_view: write ``overlay.mp4`` / ``side_by_side.mp4``.
        meshes: ``"ply"`` / ``"obj"``: write each hand's camera-space mesh per frame.
        overwrite: replace an earlier run's files in ``out_dir`` (else refuse).

    Frames that cannot be read are recorded (``unreadable_frames``) and start a new sequence;
    frames without a hand are recorded (``no_hand_frames``). A truncated input or Ctrl-C ends
    the run early with everything processed so far written (``complete: false``).

    Raises:
        VideoInputError: the input gave no frame at all (nothing is written).
        OutputExistsError: ``out_dir`` holds an earlier run and ``overwrite`` is False.
    """
    from seqhand.inference.video import VideoInputError

    run = _Single(predictor) if isinstance(predictor, Predictor) else _Multi(predictor)
    pred: Predictor = run.predictor
    out_dir = None if out_dir is None else Path(out_dir)
    if out_dir is not None:
        check_output_dir(out_dir, overwrite)
    else:
        videos, meshes = False, None
    faces = pred.faces
    writer: ResultWriter | None = None
    mesh_writer = None
    vids: dict[str, VideoWriter] = {}
    state = None
    no_hand, unreadable = [], []
    interrupted = False
    first_shape = None
    bar = None
    t0 = time.perf_counter()
    try:
        if progress:
            from tqdm import tqdm

            bar = tqdm(total=source.expected_frames, unit="frame", desc="infer")
        for k, frame in source:
            if writer is None:
                writer = ResultWriter(out_dir, pred.hand_layer.num_vertices, faces)
                if meshes:
                    mesh_writer = _MeshWriter(out_dir, meshes, faces)
            if frame is None:  # unreadable: no prediction; the next frame starts a sequence
                state = run.restart(k)
                unreadable.append(k)
                writer.add(k, [], {"unreadable": True})
                if bar is not None:
                    bar.update(1)
                continue
            outs, state = run.step(frame, run.at(state, k))
            writer.add(k, outs)
            if not any(o.found for o in outs):
                no_hand.append(k)
            if mesh_writer is not None:
                mesh_writer.add(outs)
            if videos:
                first_shape = first_shape or frame.shape[:2]
                over = _fit(overlay_hands(frame, outs, faces), first_shape)
                _video(vids, out_dir, "overlay.mp4", source.fps, crf).write(over)
                if side_view:
                    sbs = side_by_side(over, outs, faces)
                    _video(vids, out_dir, "side_by_side.mp4", source.fps, crf).write(sbs)
            if bar is not None:
                bar.update(1)
                bar.set_postfix_str(f"{bar.n / max(time.perf_counter() - t0, 1e-9):.1f} fps")
    except KeyboardInterrupt:
        interrupted = True
    except BaseException:
        for v in vids.values():
            v.close()
            v.path.unlink(missing_ok=True)
        if writer is not None:
            writer.abort()
        if mesh_writer is not None:
            mesh_writer.abort()
        raise
    finally:
        if bar is not None:
            bar.close()
    seconds = time.perf_counter() - t0
    if writer is None:
        problems = "; ".join(source.problems) or "no frames"
        raise VideoInputError(f"{source.name}: no frame could be read ({problems})")
    files, removed = [], []
    if out_dir is not None:
        for name, v in vids.items():
            v.close()
            os.replace(v.path, out_dir / name)
            files.append(name)
        if mesh_writer is not None:
            if (out_dir / MESH_DIR).exists():
                shutil.rmtree(out_dir / MESH_DIR)
            mesh_writer.finish(out_dir)
            files.append(MESH_DIR + "/")
        # with overwrite=True: an earlier run's files this run did not make would not match
        for name in VIDEO_FILES + (MESH_DIR,):
            if name not in files and name + "/" not in files and (out_dir / name).exists():
                p = out_dir / name
                shutil.rmtree(p) if p.is_dir() else p.unlink()
                removed.append(name)
    n = len(writer.rows)
    problems = list(source.problems)
    if interrupted:
        problems.append(f"interrupted by the user after {n} frames")
    cam = writer.camera
    summary = InferenceSummary(
        input=source.name,
        frames=n,
        frames_with_hand=n - len(no_hand) - len(unreadable),
        no_hand_frames=no_hand,
        unreadable_frames=unreadable,
        problems=problems,
        complete=not (interrupted or source.truncated),
        interrupted=interrupted,
        input_fps=source.fps,
        processing_fps=round(n / seconds, 3) if seconds > 0 else 0.0,
        seconds=round(seconds, 3),
        runtime=pred.runtime,
        per_frame=pred.per_frame,
        hands=_hand_summary(writer.rows),
        camera={} if cam is None else {**cam.to_dict(), "fov_deg": pred.fov},
        files=sorted(RESULT_FILES + tuple(files)) if out_dir is not None else [],
        removed=removed,
    )
    arrays, _ = writer.close(summary)
    return InferenceResult(summary, arrays, writer.rows, out_dir)


def _hand_summary(rows: list[list[FrameOutput]]) -> dict:
    hands: dict[str, dict] = {}
    for outs in rows:
        for o in outs:
            h = hands.setdefault(str(o.track_id), {"frames": 0, "first": None, "last": None,
                                                   "right": 0, "left": 0})  # fmt: skip
            if o.found:
                h["frames"] += 1
                h["first"] = o.index if h["first"] is None else h["first"]
                h["last"] = o.index
                h[o.side or "right"] += 1
    return hands


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
    """The writer of ``name`` (opened on first use under a temporary name)."""
    if name not in vids:
        vids[name] = VideoWriter(out_dir / (name + PARTIAL), fps, crf, container="mp4")
    return vids[name]


def load_results(out_dir: str | os.PathLike) -> dict:
    """Read ``results.npz`` of a run back: the top-level arrays and ``hands``, a dict
    ``{track id: {name: (N, ...) array}}`` (names: :data:`HAND_ARRAYS`)."""
    out: dict = {"hands": {}}
    with np.load(Path(out_dir) / "results.npz", allow_pickle=False) as z:
        for k in z.files:
            if k.startswith("hand") and "/" in k:
                tid, name = k[4:].split("/", 1)
                out["hands"].setdefault(int(tid), {})[name] = z[k]
            else:
                out[k] = z[k]
    out["hands"] = dict(sorted(out["hands"].items()))
    return out
