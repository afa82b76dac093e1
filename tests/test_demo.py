"""``seqhand demo --quick``: the whole pipeline end to end in seconds (make demo runs it full)."""

from __future__ import annotations

import json

from seqhand.cli import main as cli_main


def test_quick_demo_end_to_end(tmp_path, capsys):
    out = tmp_path / "demo"
    assert cli_main(["demo", "--out", str(out), "--quick"]) == 0
    summary = json.loads((out / "summary.json").read_text())
    for key in ("hand_sheet", "preview_gif", "contact_sheet", "model", "predictions_gif"):
        assert (out / summary[key].split(str(out) + "/")[-1]).is_file() or (
            tmp_path / summary[key]
        ).is_file()
    m = json.loads((out / "eval" / "metrics.json").read_text())
    assert m["num_sequences"] == 8 and m["epe3d_mean_mm"] > 0
    assert m["mean_pose_epe3d_mm"] > 0
    assert (out / "eval" / "pck.png").stat().st_size > 0
    assert "done in" in capsys.readouterr().out
