"""Video inference: hand localisation, square crops, the streaming predictor, overlays, ONNX.

``Predictor(model).step(frame, state) -> (FrameOutput, state)`` runs the network frame by frame
with its recurrent state; :class:`HandsPredictor` runs it on up to N hands with track ids;
:func:`infer` (``seqhand.infer``) is the one-liner; a :class:`BoxSource` says where the hand is (user boxes, tracking,
MediaPipe); :class:`CropTransform` is the exact crop <-> full-image map; :func:`infer_video`
writes a run's results and videos; :func:`export_onnx` writes the step as an ONNX graph with
the state as explicit inputs/outputs. See docs/inference.md.
"""

from seqhand.geometry.crop import Box, BoxError, CropTransform, full_frame_box
from seqhand.inference.localize import (
    BoxFileError,
    BoxSource,
    FirstOf,
    FixedSide,
    GivenBoxes,
    MediaPipeDetector,
    Tracker,
    mediapipe_available,
    read_boxes,
    write_boxes,
)
from seqhand.inference.predictor import (
    FrameOutput,
    Predictor,
    PredictorError,
    PredictorState,
    TorchEngine,
    scale_to_depth,
)

__all__ = [
    "Box",
    "BoxError",
    "BoxFileError",
    "BoxSource",
    "CropTransform",
    "FirstOf",
    "FixedSide",
    "FrameOutput",
    "GivenBoxes",
    "MediaPipeDetector",
    "Predictor",
    "PredictorError",
    "PredictorState",
    "TorchEngine",
    "Tracker",
    "full_frame_box",
    "mediapipe_available",
    "read_boxes",
    "scale_to_depth",
    "write_boxes",
]


def __getattr__(name: str):
    # The heavier parts (PyAV, onnxruntime, the rasteriser) load on first use.
    lazy = {
        "infer_video": "seqhand.inference.pipeline",
        "load_results": "seqhand.inference.pipeline",
        "InferenceSummary": "seqhand.inference.pipeline",
        "InferenceResult": "seqhand.inference.pipeline",
        "HandsPredictor": "seqhand.inference.hands",
        "PinholeCamera": "seqhand.inference.camera",
        "infer": "seqhand.inference.api",
        "export_onnx": "seqhand.inference.export",
        "OnnxEngine": "seqhand.inference.export",
        "temporal_smoothness": "seqhand.inference.smoothness",
        "open_frames": "seqhand.inference.video",
        "VideoWriter": "seqhand.inference.video",
    }
    if name in lazy:
        import importlib

        return getattr(importlib.import_module(lazy[name]), name)
    raise AttributeError(f"module 'seqhand.inference' has no attribute {name!r}")
