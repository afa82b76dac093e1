"""Lightning's CSV logger, except that a resumed run keeps the history of ``logs/metrics.csv``.

Lightning deletes the file when its writer starts. Here a resumed run keeps the rows of the
steps before ``keep_before_step`` (the resumed checkpoint's step; later rows belong to steps
that run again and are logged again) and appends; a fresh run starts a new file. The classes
live at module level so that DDP's spawned processes can unpickle the logger.
"""

from __future__ import annotations

import csv
import os
from pathlib import Path

from lightning.pytorch.loggers import CSVLogger
from lightning.pytorch.loggers.csv_logs import ExperimentWriter
from lightning.pytorch.loggers.logger import rank_zero_experiment


def _step_of(row: dict) -> float:
    try:
        return float(row.get("step") or "inf")
    except ValueError:
        return float("inf")


class HistoryWriter(ExperimentWriter):
    def __init__(self, log_dir: str, keep_before_step: int) -> None:
        self.keep_before_step = int(keep_before_step)
        super().__init__(log_dir=log_dir)

    def _check_log_dir_exists(self) -> None:  # the old file is handled here instead
        path = Path(self.metrics_file_path)
        if not path.is_file():
            return
        if self.keep_before_step <= 0:
            path.unlink()
            return
        with open(path, newline="") as fh:
            reader = csv.DictReader(fh)
            header = list(reader.fieldnames or [])
            rows = [r for r in reader if _step_of(r) < self.keep_before_step]
        tmp = path.with_name(path.name + ".tmp")
        with open(tmp, "w", newline="") as fh:
            w = csv.DictWriter(fh, fieldnames=header)
            w.writeheader()
            w.writerows(rows)
        os.replace(tmp, path)
        self.metrics_keys = sorted(header)


class HistoryCSVLogger(CSVLogger):
    """``CSVLogger(out_dir, name="logs", version="")`` that keeps rows before a resumed step."""

    def __init__(self, out_dir, keep_before_step: int = 0) -> None:
        super().__init__(out_dir, name="logs", version="")
        self.keep_before_step = int(keep_before_step)

    @property
    @rank_zero_experiment
    def experiment(self):
        if self._experiment is None:
            self._fs.makedirs(self.root_dir, exist_ok=True)
            self._experiment = HistoryWriter(self.log_dir, self.keep_before_step)
        return self._experiment
