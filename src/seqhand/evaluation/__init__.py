"""Evaluation: metrics (pure numpy), the metric accumulator, PCK plots."""

from seqhand.evaluation.accumulator import MetricAccumulator
from seqhand.evaluation.metrics import (
    PCK_PROTOCOLS,
    PCKResult,
    acceleration,
    acceleration_error,
    auc,
    epe2d,
    epe3d,
    f_score,
    jitter,
    mpjpe,
    mpvpe,
    pa_mpjpe,
    pa_mpvpe,
    param_change,
    pck3d,
    pck_from_errors,
    pck_thresholds,
)

__all__ = [
    "PCK_PROTOCOLS",
    "MetricAccumulator",
    "PCKResult",
    "acceleration",
    "acceleration_error",
    "auc",
    "epe2d",
    "epe3d",
    "f_score",
    "jitter",
    "mpjpe",
    "mpvpe",
    "pa_mpjpe",
    "pa_mpvpe",
    "param_change",
    "pck3d",
    "pck_from_errors",
    "pck_thresholds",
]
