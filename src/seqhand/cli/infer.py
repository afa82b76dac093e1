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
    p.add_argument("input", nargs="*",
                   help="video files, folders of frames, or folders of videos (each processed "
                   "in turn; with several, each writes to OUT/<name>/)")  # fmt: skip
    p.add_argument("--webcam", type=int, metavar="N", help="read capture device N instead")
    p.add_argument("--checkpoint", required=True, help="a seqhand model checkpoint (.pt/.ckpt)")
    p.add_argument("--out", required=True, help="output folder")
    p.add_argument(
        "--overwrite",
        action="store_true",
        help="replace the files of an earlier run in --out (default: refuse)",
    )
    loc = p.add_argument_group("hand localisation (default: --detector mediapipe)")
    loc.add_argument("--boxes", metavar="FILE",
                     help="per-frame boxes in pixels: CSV 'frame,x0,y0,x1,y1[,side]' or JSON "
                     "(docs/inference.md); used as given on every frame")  # fmt: skip
    loc.add_argument("--box", metavar="X0,Y0,X1,Y1",
                     help="one hand box for the first frame, in pixels of the frame (x right, "
                     "y down, top-left pixel centre = 0,0), then tracking")  # fmt: skip
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
        "detector's box (pulls back a drifting track; 0: only when a track is lost; "
        "default 10)",
    )  # fmt: skip
    loc.add_argument("--max-hands", type=int, default=2, metavar="N",
                     help="follow up to N hands at once, each with its own id and recurrent "
                     "state (default 2)")  # fmt: skip
    loc.add_argument("--min-confidence", type=float, default=None, metavar="C",
                     help="a tracked box whose presence score (0-1, docs/inference.md) is "
                     "below C ends the hand's track (default 0.2; 0 keeps every tracked "
                     "frame)")  # fmt: skip
    p.add_argument("--side", choices=["right", "left"],
                   help="the hands' side for every frame, whatever a box or the detector says "
                   "(default: decided over time from the detector / boxes, else right)")  # fmt: skip
    cam = p.add_mutually_exclusive_group()
    cam.add_argument(
        "--focal",
        type=float,
        metavar="PX",
        help="the camera's focal length in pixels, for camera-space outputs",
    )
    cam.add_argument("--fov", type=float, metavar="DEG",
                     help="the camera's horizontal field of view in degrees (default 60, "
                     "assumed when neither --focal nor --fov is given)")  # fmt: skip
    p.add_argument("--meshes", choices=["ply", "obj"],
                   help="also write each hand's camera-space mesh per frame to "
                   "OUT/meshes/hand<id>/ (needs trimesh: pip install 'seqhand[mesh]')")  # fmt: skip
    p.add_argument("--per-frame", action="store_true",
                   help="reset the recurrent state at every frame (for comparison)")  # fmt: skip
    p.add_argument(
        "--runtime",
        choices=["torch", "onnx"],
        default="torch",
        help="run the network with PyTorch or onnxruntime (default torch)",
    )
    p.add_argument("--onnx", help="with --runtime onnx: an exported model (default: export now)")
    p.add_argument("--threads", type=int, help="CPU threads for the network")
    p.add_argument(
        "--fps", type=float, help="frame rate of a folder of frames, frames per second (default 30)"
    )
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


def _infer(args) -> int:
    import torch

    from seqhand.inference.api import (
        build_hands_predictor,
        expand_inputs,
        output_dirs,
        parse_box,
    )
    from seqhand.inference.pipeline import check_output_dir, infer_video
    from seqhand.inference.predictor import Predictor
    from seqhand.inference.video import open_frames

    if bool(args.input) == (args.webcam is not None):
        raise SeqhandError(
            "give the input: video files, folders of frames or of videos, or --webcam N"
        )
    if Path(args.out).exists() and not Path(args.out).is_dir():
        raise SeqhandError(f"--out {args.out}: a file is in the way; give a folder")
    if args.fps is not None and not 0 < args.fps <= 1000:
        raise SeqhandError(f"--fps must be a frame rate in (0, 1000], got {args.fps}")
    if args.threads is not None and args.threads < 1:
        raise SeqhandError(f"--threads must be >= 1, got {args.threads}")
    # everything a user can get wrong is checked before anything slow starts
    if args.box:
        parse_box(args.box)
        if args.boxes:
            raise SeqhandError("give either --boxes FILE or --box x0,y0,x1,y1, not both")
    if not Path(args.checkpoint).is_file():
        raise SeqhandError(f"{args.checkpoint}: no such checkpoint file")
    inputs = expand_inputs(args.input) if args.input else [None]
    for p in inputs:
        if p is not None and not p.exists():
            raise SeqhandError(f"{p}: no such file or folder")
    dirs = output_dirs(inputs, args.out) if args.input else [Path(args.out)]
    for d in dirs:
        check_output_dir(d, args.overwrite)
    if args.focal is not None and not args.focal > 0:
        raise SeqhandError(f"--focal must be a positive number of pixels, got {args.focal}")
    if args.fov is not None and not 0 < args.fov < 180:
        raise SeqhandError(f"--fov must lie in (0, 180) degrees, got {args.fov}")
    if args.meshes:
        import importlib.util

        if importlib.util.find_spec("trimesh") is None:
            raise SeqhandError("--meshes needs the 'trimesh' package: pip install 'seqhand[mesh]'")
    saved_threads = torch.get_num_threads()
    if args.runtime == "onnx":
        # onnxruntime runs the network with its own thread pool; torch only crops and decodes
        # the hand (~4 ms a frame). One torch thread keeps two spinning pools from fighting
        # over the same cores (measured: 97 -> 64 ms a frame on 2 busy cores).
        torch.set_num_threads(1)
    elif args.threads:
        torch.set_num_threads(args.threads)
    code = 0
    try:
        predictor = Predictor.from_checkpoint(
            args.checkpoint, runtime=args.runtime, onnx=args.onnx, side=args.side or "right",
            per_frame=args.per_frame, onnx_threads=args.threads, focal=args.focal, fov=args.fov,
            min_confidence=args.min_confidence,
        )  # fmt: skip
        for path, out in zip(inputs, dirs):
            source = open_frames(path, webcam=args.webcam, fps=args.fps)
            hands = build_hands_predictor(
                predictor, boxes=args.boxes, box=args.box, detector=args.detector or "auto",
                detector_model=args.detector_model, mirrored=args.mirrored, track=args.track,
                redetect=args.redetect, detect_every_frame=args.detect_every_frame,
                max_hands=args.max_hands, side=args.side,
            )  # fmt: skip
            res = infer_video(
                source, hands, out, videos=not args.no_video, side_view=not args.no_side_view,
                progress=not args.no_progress, meshes=args.meshes, overwrite=args.overwrite,
            )  # fmt: skip
            code = max(code, _report(res.summary, out))
    finally:
        torch.set_num_threads(saved_threads)
    return code


def _report(summary, out) -> int:
    s = summary
    print(
        f"seqhand infer: {s.input}: {s.frames} frames in {s.seconds:.1f} s "
        f"({s.processing_fps:.1f} frames/s; the input runs at {s.input_fps:g}), a hand in "
        f"{s.frames_with_hand}; wrote {', '.join(s.files)} to {out}"
    )
    for tid, h in s.hands.items():
        if h["frames"]:
            sides = ", ".join(f"{k} {h[k]}" for k in ("right", "left") if h[k])
            print(f"  hand #{tid}: {h['frames']} frames ({h['first']}-{h['last']}; {sides})")
    cam = s.camera
    if cam:
        how = "assumed: 60 deg horizontal field of view" if cam["assumed"] else "given"
        print(f"  camera: focal {cam['focal']:.1f} px ({how})")
    if s.no_hand_frames:
        shown = ", ".join(str(k) for k in s.no_hand_frames[:20])
        more = " ..." if len(s.no_hand_frames) > 20 else ""
        print(f"  no hand in {len(s.no_hand_frames)} frames: {shown}{more}")
    for name in s.removed:
        print(f"  removed {name} of the earlier run in {out} (--overwrite; not made this time)")
    for msg in s.problems:
        print(f"  warning: {msg}")
    if not s.complete and not s.interrupted:
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
