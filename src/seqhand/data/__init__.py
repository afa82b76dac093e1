"""Datasets: generated SeqHAND shards (``shards``, ``seqhand_dataset``) and the real
benchmarks, read from their published layouts (this package's namespace exports the latter).

Every real-benchmark loader yields :class:`RealSample` in the project's conventions (joint
order, right hand, metres). Dataset roots come from an argument or from ``$SEQHAND_DATA`` (see
:mod:`seqhand.data.roots` and ``docs/datasets.md``).
"""

from seqhand.data.dexter_object import DexterObject
from seqhand.data.egodexter import EgoDexter
from seqhand.data.freihand import FreiHAND
from seqhand.data.rhd import RHD
from seqhand.data.roots import ENV_VAR, resolve_root
from seqhand.data.stb import STB, palm_from_joints, palm_from_vertices, wrist_from_palm
from seqhand.data.types import (
    DatasetError,
    DatasetFormatError,
    DatasetNotFoundError,
    ManoParams,
    RealDataset,
    RealSample,
    collate_samples,
    unmirror_points,
)

REAL_DATASETS = {
    "freihand": FreiHAND,
    "stb": STB,
    "egodexter": EgoDexter,
    "dexter_object": DexterObject,
    "rhd": RHD,
}

__all__ = [
    "ENV_VAR",
    "REAL_DATASETS",
    "RHD",
    "STB",
    "DatasetError",
    "DatasetFormatError",
    "DatasetNotFoundError",
    "DexterObject",
    "EgoDexter",
    "FreiHAND",
    "ManoParams",
    "RealDataset",
    "RealSample",
    "collate_samples",
    "palm_from_joints",
    "palm_from_vertices",
    "resolve_root",
    "unmirror_points",
    "wrist_from_palm",
]
