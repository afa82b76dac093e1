"""``seqhand infer`` (a video, a folder of frames or a webcam -> 3D hands) and ``seqhand export``
(the streaming step -> ONNX)."""

from __future__ import annotations

import logging
from pathlib import Path

from seqhand.errors import SeqhandError

log = logging.getLogger("seqhand.infer")


def register(sub) -> None:
    p = sub.add_parser(
        "infer",
        help="estimate 3D hands in a video, a folder of frames or a webcam",
        description="Localise the hand in each frame, crop it (2.2 x the box), run the "
        "streaming estimator and write results.npz / results.jsonl / summary.json, an overlay "
        "video and a side-by-side 3D view. See docs/inference.md.",
    )
    p.add_argument("input", nargs="?", help="a video file or a folder of frames")
    p.add_argument("--webcam", type=int, metavar="N", help="read capture device N instead")
    p.add_argument("--checkpoint", required=True, help="a seqhand model checkpoint (.pt/.ckpt)")
    p.add_argument("--out", required=True, help="output folder")
    loc = p.add_argument_group("hand localisation (default: --detector mediapipe)")
    loc.add_argument("--boxes", help="per-frame boxes: CSV 'frame,x0,y0,x1,y1[,side]' or JSON")
    loc.add_argument("--box", help="one box 'x0,y0,x1,y1' for the first frame, then tracking")
    loc.add_argument("--detector", choices=["mediapipe"], help="detect hands (optional extra)")
    loc.add_argument("--detector-model", help="hand_landmarker.task for new mediapipe versions")
    loc.add_argument("--mirrored", action="store_true", help="the input is mirrored (selfie)")
    loc.add_argument(
        "--track", action="store_true",
        help="with --boxes: track from the predicted joints where the file has no box",
    )  # fmt: skip
    loc.add_argument(
        "--detect-every-frame", action="store_true",
        help="with --detector: detect in every frame instead of tracking between detections",
    )  # fmt: skip
    loc.add_argument(
        "--redetect", type=int, default=10, metavar="N",
        help="with --detector: also detect every N frames while tracking, and prefer the "
        "detector's box (pulls back a drifting track; 0: only when the track is lost; "
        "default 10)",
    )  # fmt: skip
    p.add_argument("--side", choices=["right", "left"],
                   help="the hand's side for every frame, whatever a box or the detector says "
                   "(default: the box's side, else right)")  # fmt: skip
    p.add_argument("--per-frame", action="store_true",
                   help="reset the recurrent state at every frame (for comparison)")  # fmt: skip
    p.add_argument("--runtime", choices=["torch", "onnx"], default="torch")
    p.add_argument("--onnx", help="with --runtime onnx: an exported model (default: export now)")
    p.add_argument("--threads", type=int, help="CPU threads for the network")
    p.add_argument("--fps", type=float, help="frame rate of a folder of frames (default 30)")
    p.add_argument("--no-video", action="store_true", help="write results only, no videos")
    p.add_argument("--no-side-view", action="store_true", help="skip side_by_side.mp4")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(func=_infer)

    e = sub.add_parser(
        "export",
        help="export the streaming step of a checkpoint to ONNX",
        description="Write the per-frame step with the recurrent state as explicit inputs and "
        "outputs (see docs/inference.md) and check onnxruntime against PyTorch.",
    )
    e.add_argument("--checkpoint", required=True, help="a seqhand model checkpoint")
    e.add_argument("--onnx", required=True, help="output .onnx file")
    e.add_argument("--image-size", type=int, help="input side (default: the checkpoint's)")
    e.add_argument("--opset", type=int, default=17)
    e.add_argument("--quantize-recurrent", action="store_true",
                   help="int8 weights for the ConvLSTM's gate product (faster at batch 1, "
                   "outputs change slightly; see docs/inference.md)")  # fmt: skip
    e.add_argument("--no-check", action="store_true", help="skip the onnxruntime comparison")
    e.set_defaults(func=_export)


def _parse_box(text: str):
    from seqhand.geometry.crop import Box

    try:
        vals = [float(v) for v in text.split(",")]
        if len(vals) != 4:
            raise ValueError
        return Box(*vals)
    except (ValueError, SeqhandError):
        raise SeqhandError(
            f"--box must be 'x0,y0,x1,y1' with x0 <= x1, y0 <= y1, got {text!r}"
        ) from None


def build_box_source(args):
    """The box source the options ask for (see ``seqhand infer --help``)."""
    from seqhand.inference.localize import FirstOf, GivenBoxes, MediaPipeDetector, Tracker

    if args.boxes and args.box:
        raise SeqhandError("give either --boxes FILE or --box x0,y0,x1,y1, not both")
    if args.redetect < 0:
        raise SeqhandError(f"--redetect must be >= 0 frames, got {args.redetect}")
    if args.boxes:
        given = GivenBoxes.from_file(args.boxes)
        if not len(given):
            raise SeqhandError(f"{args.boxes}: the file holds no boxes")
        return Tracker(given, refresh=True) if args.track else given
    if args.box:
        start = _parse_box(args.box)
        if args.detector:
            det = MediaPipeDetector(mirrored_input=args.mirrored, model_path=args.detector_model)
            return Tracker(FirstOf(GivenBoxes({0: start}), det), refresh=args.redetect)
        return Tracker(start)
    # default: the detector (a clear message if the optional extra is missing)
    try:
        det = MediaPipeDetector(mirrored_input=args.mirrored, model_path=args.detector_model)
    except SeqhandError as e:
        if args.detector:
            raise
        raise SeqhandError(
            f"no hand localisation: give --boxes FILE or --box x0,y0,x1,y1, or install the "
            f"detector ({e})"
        ) from None
    return det if args.detect_every_frame else Tracker(det, refresh=args.redetect)


def _infer(args) -> int:
    import torch

    from seqhand.inference.localize import FixedSide
    from seqhand.inference.pipeline import infer_video
    from seqhand.inference.predictor import Predictor
    from seqhand.inference.video import open_frames

    if (args.input is None) == (args.webcam is None):
        raise SeqhandError(
            "give exactly one input: a video file, a folder of frames, or --webcam N"
        )
    if Path(args.out).exists() and not Path(args.out).is_dir():
        raise SeqhandError(f"--out {args.out}: a file is in the way; give a folder")
    if args.fps is not None and not 0 < args.fps <= 1000:
        raise SeqhandError(f"--fps must be a frame rate in (0, 1000], got {args.fps}")
    if args.threads is not None and args.threads < 1:
        raise SeqhandError(f"--threads must be >= 1, got {args.threads}")
    saved_threads = torch.get_num_threads()
    if args.runtime == "onnx":
        # onnxruntime runs the network with its own thread pool; torch only crops and decodes
        # the hand (~4 ms a frame). One torch thread keeps two spinning pools from fighting
        # over the same cores (measured: 97 -> 64 ms a frame on 2 busy cores).
        torch.set_num_threads(1)
    elif args.threads:
        torch.set_num_threads(args.threads)
    try:
        source = open_frames(args.input, webcam=args.webcam, fps=args.fps)
        box_source = build_box_source(args)
        if args.side:
            box_source = FixedSide(box_source, args.side)
        predictor = Predictor.from_checkpoint(
            args.checkpoint, runtime=args.runtime, onnx=args.onnx, box_source=box_source,
            side=args.side or "right", per_frame=args.per_frame, onnx_threads=args.threads,
        )  # fmt: skip
        summary = infer_video(
            source, predictor, Path(args.out), videos=not args.no_video,
            side_view=not args.no_side_view, progress=not args.no_progress,
        )  # fmt: skip
    finally:
        torch.set_num_threads(saved_threads)
    print(
        f"seqhand infer: {summary.frames} frames, hand found in {summary.frames_with_hand}; "
        f"wrote {', '.join(summary.files)} to {args.out}"
    )
    if summary.no_hand_frames:
        shown = ", ".join(str(k) for k in summary.no_hand_frames[:20])
        more = " ..." if len(summary.no_hand_frames) > 20 else ""
        print(f"  no hand in {len(summary.no_hand_frames)} frames: {shown}{more}")
    for msg in summary.problems:
        print(f"  warning: {msg}")
    if not summary.complete and not summary.interrupted:
        print("  the input was not processed to its end (summary.json: complete = false)")
        return 1
    return 0


def _export(args) -> int:
    from seqhand.inference.export import OnnxEngine, compare_with_torch, export_onnx
    from seqhand.training.checkpoint import load_model

    model, rec = load_model(args.checkpoint)
    size = int(args.image_size or rec.get("image_size", 224))
    path = export_onnx(
        model, args.onnx, size, hand_model=str(rec.get("hand_model", "builtin")), opset=args.opset,
        quantize_recurrent=args.quantize_recurrent,
    )  # fmt: skip
    print(f"seqhand export: wrote {path} ({Path(path).stat().st_size / 1e6:.1f} MB, input "
          f"1x3x{size}x{size})")  # fmt: skip
    if not args.no_check:
        d = compare_with_torch(model, OnnxEngine(path))
        print(
            f"  onnxruntime vs PyTorch over 4 streamed frames: params max |diff| "
            f"{d['params_max_abs']:.2e} (relative {d['params_max_rel']:.2e}), state max |diff| "
            f"{d['state_max_abs']:.2e}"
        )
    return 0
