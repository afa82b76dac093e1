"""Make docs/img/view_modes.png (python docs/img/view_modes_figure.py): what each camera model
of ``seqhand generate`` shows, over every frame of 3,000 flows per mode.

Left: the angle between the palm normal and the direction toward the camera (0 deg: the palm
faces the camera; 180 deg: the back of the hand does). Right: the direction of the fingers
(wrist -> middle MCP) in the image, as a polar histogram (up = toward the top of the image).
"""

from __future__ import annotations

from pathlib import Path

import matplotlib
import numpy as np

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from scipy.spatial.transform import Rotation  # noqa: E402

from seqhand.synth.bank import bank_from_prior  # noqa: E402
from seqhand.synth.flow import FlowConfig, generate_flows  # noqa: E402
from seqhand.synth.nn import build_nn  # noqa: E402

OUT = Path(__file__).resolve().parent
MODES = {
    "authors (ego 20 %, the default)": FlowConfig(views="authors", ego_fraction=0.2),
    "authors (ego 0 %, their script)": FlowConfig(views="authors", ego_fraction=0.0),
    "seqhand (ego 50 %, earlier default)": FlowConfig(views="seqhand", ego_fraction=0.5),
}


def view_angles(cam_rot: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Palm-to-camera angle (deg) and finger direction in the image (rad, 0 = up, clockwise)."""
    r = Rotation.from_rotvec(cam_rot.reshape(-1, 3))
    palm = r.apply([0.0, 0.0, -1.0])  # canonical palm normal
    fingers = r.apply([0.0, -1.0, 0.0])  # canonical finger direction
    palm_deg = np.degrees(np.arccos(np.clip(-palm[:, 2], -1.0, 1.0)))
    finger_dir = np.arctan2(fingers[:, 0], -fingers[:, 1])  # image x right, y down
    return palm_deg, finger_dir


def main() -> None:
    bank = bank_from_prior(None, 5000, seed=0)
    nn = build_nn(bank.flat)
    fig = plt.figure(figsize=(11, 3.4 * len(MODES)))
    for i, (name, cfg) in enumerate(MODES.items()):
        flows = generate_flows(bank, nn, seed=0, start=0, count=3000, config=cfg)
        palm, fdir = view_angles(flows.cam_rot)
        ax = fig.add_subplot(len(MODES), 2, 2 * i + 1)
        ax.hist(palm, bins=np.arange(0, 181, 5), color="tab:blue")
        ax.axvline(30, color="k", lw=0.8, ls="--")
        ax.axvline(120, color="k", lw=0.8, ls="--")
        ax.set_title(f"{name}\npalm within 30 deg: {(palm < 30).mean():.0%}, "
                     f"back (> 120 deg): {(palm > 120).mean():.0%}", fontsize=9)  # fmt: skip
        ax.set_xlabel("angle between palm normal and camera (deg)")
        ax.set_ylabel("frames")
        ax = fig.add_subplot(len(MODES), 2, 2 * i + 2, projection="polar")
        ax.set_theta_zero_location("N")
        ax.set_theta_direction(-1)
        ax.hist(fdir, bins=36, color="tab:orange")
        ax.set_yticklabels([])
        ax.set_title(f"finger direction in the image (up = top); pointing down (> 120 deg from "
                     f"up): {(np.abs(fdir) > np.radians(120)).mean():.0%}", fontsize=9)  # fmt: skip
    fig.tight_layout()
    fig.savefig(OUT / "view_modes.png", dpi=80)
    print(OUT / "view_modes.png")


if __name__ == "__main__":
    main()
