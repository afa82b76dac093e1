"""PCK curve plots (matplotlib, Agg canvas; no pyplot global state) with the paper's numbers.

SeqHAND (Yang et al., ECCV 2020) plots 3D PCK for ED, DO and STB in Fig. 6-8 but gives numbers
only in Table 3 (AUC and average 3D error per training variant) and Table 4 (average 3D error
of other methods). Those numbers are tabulated below and printed next to the curves. For STB
the reference curves of Zhang et al. 2016 (PSO, ICPPSO, CHPR on B1, 20-50 mm), the baselines of
SeqHAND's Fig. 8 via [47], are drawn as tabulated in hand3d (``utils/general.py``,
``get_stb_ref_curves``).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from seqhand.evaluation.metrics import auc as _auc

DATASETS = ("egodexter", "dexter_object", "stb")
DATASET_TITLES = {"egodexter": "EgoDexter", "dexter_object": "Dexter+Object", "stb": "STB"}

# SeqHAND Table 3: (AUC ED, DO, STB), (avg. 3D error mm ED, DO, STB). Last row = SeqHAND-Net.
PAPER_TABLE3: tuple[tuple[str, tuple[float, float, float], tuple[float, float, float]], ...] = (
    ("Encoder + Train(SynthHAND)", (0.350, 0.095, 0.140), (52.11, 100.84, 68.86)),
    ("Encoder + Train(SynthHAND) + Train(FH+STB)", (0.397, 0.516, 0.985), (49.18, 33.12, 9.80)),
    ("Encoder + ConvLSTM + Train(SeqHAND)", (0.373, 0.151, 0.121), (52.18, 81.51, 71.10)),
    (
        "Encoder + ConvLSTM + Train(SeqHAND) + Train(FH+STB)",
        (0.444, 0.581, 0.981),
        (40.94, 29.41, 9.82),
    ),
    (
        "Encoder + ConvLSTM + Train(SeqHAND) + Train_C(FH+STB)",
        (0.766, 0.843, 0.978),
        (17.16, 18.12, 9.87),
    ),
)
# SeqHAND Table 4: average 3D joint error (mm) on ED, DO, STB (None = not reported).
PAPER_TABLE4: tuple[tuple[str, tuple[float | None, float | None, float | None]], ...] = (
    ("SeqHAND (paper)", (17.16, 18.12, 9.87)),
    ("Boukhayma et al. (RGB)", (51.87, 33.16, 9.76)),
    ("Boukhayma et al. (best)", (45.33, 25.53, 9.76)),
    ("Spurr et al.", (56.92, 40.20, None)),
    ("Zimmermann et al.", (52.77, 34.75, None)),
)


def paper_results(dataset: str) -> dict:
    """The paper's numbers for ``dataset`` (``egodexter``, ``dexter_object`` or ``stb``):
    ``{"auc": SeqHAND-Net AUC, "mean_error_mm": ..., "table3": [...], "table4": [...]}``."""
    if dataset not in DATASETS:
        raise ValueError(f"the paper reports {DATASETS}, not {dataset!r}")
    k = DATASETS.index(dataset)
    return {
        "auc": PAPER_TABLE3[-1][1][k],
        "mean_error_mm": PAPER_TABLE3[-1][2][k],
        "table3": [{"method": m, "auc": a[k], "mean_error_mm": e[k]} for m, a, e in PAPER_TABLE3],
        "table4": [{"method": m, "mean_error_mm": e[k]} for m, e in PAPER_TABLE4],
    }


# Zhang et al. 2016, STB B1, thresholds 20..50 mm (hand3d get_stb_ref_curves).
STB_REFERENCE_THRESHOLDS_MM = np.array([20.0, 25.0, 30.0, 35.0, 40.0, 45.0, 50.0])
STB_REFERENCE_CURVES: dict[str, np.ndarray] = {
    "PSO": np.array(
        [0.32236842, 0.53947368, 0.67434211, 0.75657895, 0.80921053, 0.86513158, 0.89473684]
    ),
    "ICPPSO": np.array(
        [0.51973684, 0.64473684, 0.71710526, 0.77302632, 0.80921053, 0.84868421, 0.86842105]
    ),
    "CHPR": np.array(
        [0.56578947, 0.71710526, 0.82236842, 0.88157895, 0.91447368, 0.9375, 0.96052632]
    ),
}


def curve_from_metrics(metrics: dict, label: str, protocol: str | None = None):
    """``(label, thresholds_mm, curve)`` from :meth:`MetricAccumulator.evaluate`'s output."""
    pck = metrics["pck"]
    name = protocol if protocol is not None else next(iter(pck))
    return label, np.asarray(pck[name]["thresholds_mm"]), np.asarray(pck[name]["curve"], float)


def plot_pck(
    curves: Sequence[tuple[str, np.ndarray, np.ndarray]],
    path: str | os.PathLike,
    *,
    dataset: str | None = None,
    title: str | None = None,
    show_reference: bool = True,
    dpi: int = 120,
) -> Path:
    """Plot 3D PCK curves to a PNG.

    Args:
        curves: ``(label, thresholds_mm (T,), pck (T,))`` triples; each label gets its AUC over
            its own thresholds.
        path: output ``.png``.
        dataset: ``"egodexter"``, ``"dexter_object"`` or ``"stb"`` to add the paper's numbers
            (and, for STB, Zhang et al.'s reference curves).
        title: figure title (default: the dataset's name).
        show_reference: draw the paper's numbers / reference curves when ``dataset`` is given.

    Returns:
        The path written.
    """
    fig = Figure(figsize=(7.2, 4.6))
    FigureCanvasAgg(fig)
    ax = fig.add_axes((0.09, 0.12, 0.56 if dataset and show_reference else 0.86, 0.78))
    lo, hi = np.inf, -np.inf
    for label, t, y in curves:
        t, y = np.asarray(t, float), np.asarray(y, float)
        ax.plot(
            t,
            y,
            lw=2.0,
            marker="o" if len(t) <= 12 else None,
            ms=3.5,
            label=f"{label} (AUC={_auc(y, t):.3f})",
        )
        lo, hi = min(lo, t.min()), max(hi, t.max())
    ref = dataset is not None and show_reference
    if ref and dataset == "stb":
        for name, y in STB_REFERENCE_CURVES.items():
            ax.plot(
                STB_REFERENCE_THRESHOLDS_MM,
                y,
                ls="--",
                lw=1.2,
                color="0.55",
                label=f"{name} [Zhang et al.] (AUC={_auc(y, STB_REFERENCE_THRESHOLDS_MM):.3f})",
            )
    if np.isfinite(lo):
        ax.set_xlim(lo, hi)
    ax.set_ylim(0.0, 1.01)
    ax.set_xlabel("error threshold (mm)")
    ax.set_ylabel("3D PCK")
    ax.grid(True, alpha=0.3)
    ax.legend(loc="lower right", fontsize=7.5)
    ax.set_title(title or DATASET_TITLES.get(dataset or "", "3D PCK"))
    if ref:
        p = paper_results(dataset)
        lines = [
            "SeqHAND paper, Table 3:",
            f"  AUC {p['auc']:.3f} (range of Fig. 6-8)",
            f"  avg 3D error {p['mean_error_mm']:.2f} mm",
            "",
            "Table 4, avg 3D error (mm):",
        ]
        for row in p["table4"]:
            v = "-" if row["mean_error_mm"] is None else f"{row['mean_error_mm']:.2f}"
            lines.append(f"  {row['method']}: {v}")
        fig.text(
            0.67, 0.90, "\n".join(lines), va="top", ha="left", fontsize=7.5, family="monospace"
        )
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=dpi)
    return path
