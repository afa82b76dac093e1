"""Backbones, the ConvLSTM, SeqHAND-Net and its ablation variants, and decoding to a hand.

Build any model by name with :func:`build_model` (``list_models()`` shows the names); every
model has one surface: ``forward(frames (B, T, 3, H, W), state=None) -> (params (B, T, 26),
state)``, ``step(frame, state)``, ``is_recurrent``, ``recurrent_parameters()``. Decode the
parameters to joints and a mesh with :func:`decode_params`. See docs/model.md.
"""

from seqhand.models.convlstm import ConvLSTM, ConvLSTMCell
from seqhand.models.decode import DecodedHand, HandDecoder, decode_params
from seqhand.models.resnet import (
    IMAGENET_MEAN,
    IMAGENET_STD,
    BackboneWeightsError,
    ResNet,
    build_resnet,
    load_backbone_weights,
)
from seqhand.models.seqhandnet import (
    CROP_FACTOR,
    HAND_EXTENT_M,
    HandRegressor,
    SeqHandNet,
    normalize_frames,
    params_to_raw,
    raw_to_params,
    reference_scale,
)
from seqhand.models.variants import (
    PAPER_PARAM_COUNTS_M,
    I3DRegressor,
    LSTMRegressor,
    MFNetRegressor,
    PerFrameRegressor,
    build_model,
    list_models,
    register_model,
)

__all__ = [
    "CROP_FACTOR",
    "HAND_EXTENT_M",
    "IMAGENET_MEAN",
    "IMAGENET_STD",
    "PAPER_PARAM_COUNTS_M",
    "BackboneWeightsError",
    "ConvLSTM",
    "ConvLSTMCell",
    "DecodedHand",
    "HandDecoder",
    "HandRegressor",
    "I3DRegressor",
    "LSTMRegressor",
    "MFNetRegressor",
    "PerFrameRegressor",
    "ResNet",
    "SeqHandNet",
    "build_model",
    "build_resnet",
    "decode_params",
    "list_models",
    "load_backbone_weights",
    "normalize_frames",
    "params_to_raw",
    "raw_to_params",
    "reference_scale",
    "register_model",
]
