"""BigHand2.2M annotations -> a pose bank (streamed, tolerant of malformed lines).

Format of ``Training_Annotation.txt`` as distributed: one line per depth frame, fields separated
by tabs (any whitespace is accepted): the image name, then 63 numbers = 21 joints x (x, y, z)
in **millimetres** in the depth camera's frame, joints in BigHand's order (wrist; the five MCPs
thumb -> little; then PIP, DIP, TIP of thumb, index, middle, ring, little;
:data:`seqhand.conventions.BIGHAND_TO_PROJECT`).

The file is read line by line (never held in memory as text); a line is *skipped and counted*
when it has the wrong number of fields, a field that is not a number, or a non-finite value
(NaN / inf). Joints are converted to metres and the project's order at this boundary, then
canonicalised (:func:`seqhand.synth.bank.canonicalize`).
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from seqhand.conventions import MM_TO_M, NUM_JOINTS, to_project_order
from seqhand.synth.bank import BankError, PoseBank, canonicalize, make_meta

N_FIELDS = 1 + NUM_JOINTS * 3
SKIP_REASONS = ("field_count", "not_a_number", "non_finite", "degenerate")


@dataclasses.dataclass
class ParseReport:
    """What happened to every line of an annotation file.

    Attributes:
        lines: lines read (blank lines included). parsed: poses kept.
        skipped: count per reason (``field_count``, ``not_a_number``, ``non_finite``,
            ``degenerate`` - a pose whose palm frame is undefined).
        examples: up to ``max_examples`` ``(line number, reason, first 60 characters)``.
        blank: blank lines (ignored, not counted as skipped).
    """

    lines: int = 0
    parsed: int = 0
    blank: int = 0
    skipped: dict = dataclasses.field(default_factory=lambda: dict.fromkeys(SKIP_REASONS, 0))
    examples: list = dataclasses.field(default_factory=list)
    max_examples: int = 10

    @property
    def n_skipped(self) -> int:
        return int(sum(self.skipped.values()))

    def skip(self, line_no: int, reason: str, text: str) -> None:
        self.skipped[reason] += 1
        if len(self.examples) < self.max_examples:
            self.examples.append((line_no, reason, text[:60]))

    def summary(self) -> str:
        """One human-readable paragraph."""
        parts = [f"{self.lines:,} lines, {self.parsed:,} poses kept, {self.n_skipped:,} skipped"]
        if self.n_skipped:
            parts.append("(" + ", ".join(f"{k}: {v:,}" for k, v in self.skipped.items() if v) + ")")
        text = " ".join(parts)
        for line_no, reason, snippet in self.examples:
            text += f"\n  line {line_no}: {reason}: {snippet!r}"
        return text

    def as_dict(self) -> dict:
        return {
            "lines": self.lines,
            "parsed": self.parsed,
            "blank": self.blank,
            "skipped": dict(self.skipped),
            "examples": [list(e) for e in self.examples],
        }


def iter_bighand_chunks(
    path: str | os.PathLike, report: ParseReport, chunk: int = 65536, every: int = 1
) -> Iterator[tuple[list[str], list[int], np.ndarray]]:
    """Stream ``(names, line numbers, joints_mm (k, 21, 3) float64 in BigHand order)`` chunks
    of valid lines.

    Args:
        path: the annotation file. report: filled in as lines are read.
        chunk: poses per yielded chunk. every: keep every ``every``-th parsed line (numbers
            all finite; subsampling a 2.2M-line file - the counts in ``report`` cover all
            lines).
    """
    path = Path(path)
    if not path.is_file():
        raise BankError(f"{path}: no such BigHand annotation file")
    names: list[str] = []
    line_nos: list[int] = []
    buf = np.empty((chunk, N_FIELDS - 1), np.float64)
    n = 0
    valid = 0
    with open(path, encoding="utf-8", errors="replace") as fh:
        for line_no, line in enumerate(fh, start=1):
            report.lines += 1
            fields = line.split()
            if not fields:
                report.blank += 1
                continue
            if len(fields) != N_FIELDS:
                report.skip(line_no, "field_count", line.strip())
                continue
            try:
                vals = [float(x) for x in fields[1:]]
            except ValueError:
                report.skip(line_no, "not_a_number", line.strip())
                continue
            row = np.asarray(vals)
            if not np.all(np.isfinite(row)):
                report.skip(line_no, "non_finite", line.strip())
                continue
            valid += 1
            if (valid - 1) % every:
                continue
            buf[n] = row
            names.append(fields[0])
            line_nos.append(line_no)
            n += 1
            if n == chunk:
                yield names, line_nos, buf.reshape(chunk, NUM_JOINTS, 3).copy()
                names, line_nos, n = [], [], 0
    if n:
        yield names, line_nos, buf[:n].reshape(n, NUM_JOINTS, 3).copy()


def load_bighand(
    path: str | os.PathLike,
    *,
    every: int = 1,
    limit: int | None = None,
    mirror: bool = False,
    scale_to: float | None = None,
    keep_names: bool = True,
    progress: bool = False,
) -> tuple[PoseBank, ParseReport]:
    """Read a BigHand2.2M annotation file into a canonical pose bank.

    Args:
        path: ``Training_Annotation.txt`` (or any file in that format).
        every: keep every ``every``-th valid pose. limit: stop after this many poses.
        mirror: mirror x before canonicalising (for a left hand, or a camera frame of the other
            handedness - see ``tips_palmar_fraction`` in :func:`seqhand.synth.bank.bank_summary`).
        scale_to: optional scale normalisation (see :func:`seqhand.synth.bank.canonicalize`).
        keep_names: keep the image names in ``bank.names``.
    Returns:
        The bank and the :class:`ParseReport` (also stored in ``bank.meta["parse"]``).
    """
    report = ParseReport()
    parts: list[np.ndarray] = []
    names: list[str] = []
    total = 0
    chunks = iter_bighand_chunks(path, report, every=every)
    if progress:
        from tqdm import tqdm

        chunks = tqdm(chunks, desc="BigHand", unit="chunk")
    for chunk_names, chunk_lines, mm in chunks:
        joints = to_project_order(mm, "bighand") * MM_TO_M
        if mirror:
            joints[..., 0] *= -1.0
        canon = canonicalize(joints, scale_to=scale_to)
        ok = np.isfinite(canon).all(axis=(1, 2))
        for i in np.nonzero(~ok)[0]:
            report.skip(chunk_lines[i], "degenerate", chunk_names[i])
        canon = canon[ok]
        kept = [nm for nm, k in zip(chunk_names, ok) if k]
        if limit is not None and total + len(canon) > limit:
            canon, kept = canon[: limit - total], kept[: limit - total]
        parts.append(canon)
        names.extend(kept)
        total += len(canon)
        if limit is not None and total >= limit:
            break
    report.parsed = total
    if total == 0:
        raise BankError(f"{path}: no valid BigHand pose found\n{report.summary()}")
    joints = np.concatenate(parts)
    meta = make_meta("bighand", total, scale_to, path=str(path), input_unit="mm",
                     input_order="bighand", every=every, limit=limit, mirror=mirror,
                     parse=report.as_dict())  # fmt: skip
    return PoseBank(joints=joints, meta=meta, names=np.asarray(names) if keep_names else None), (
        report
    )
