"""Make the pictures of docs/pose_flows.md (python docs/img/pose_flows_figures.py).

prior_modes.png: every mode of the built-in pose prior on the built-in hand.
prior_samples.png: random prior samples.
pose_flows.png: pose flows from a 200k-pose prior bank, rendered with the shipped joints->theta
encoder (theta from the flow's joints, as the dataset generator does) and the camera flow.
"""

from __future__ import annotations

from pathlib import Path

import matplotlib
import numpy as np
import torch

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from scipy.spatial.transform import Rotation  # noqa: E402

from seqhand.hand import HandLayer, load_asset  # noqa: E402
from seqhand.hand import prior as pr  # noqa: E402
from seqhand.hand.sheet import VIEWS, render_mesh  # noqa: E402
from seqhand.synth.bank import bank_from_prior  # noqa: E402
from seqhand.synth.encoder import canonical_placement, load_builtin_encoder  # noqa: E402
from seqhand.synth.flow import generate_flows  # noqa: E402
from seqhand.synth.nn import build_nn  # noqa: E402
from seqhand.synth.raster import render_posed  # noqa: E402

OUT = Path(__file__).resolve().parent
SKIN = np.array([0.85, 0.65, 0.55])


def _sheet(asset, layer, params, names, path, cols=5, views=("palm", "3/4")):
    poses = pr.anatomical_to_pose(params, pr.anatomical_axes(pr.rest_joints(asset), asset.side))
    with torch.no_grad():
        verts = layer(hand_pose=torch.as_tensor(poses)).vertices.numpy()
    rows = (len(verts) + cols - 1) // cols
    nv = len(views)
    fig, axs = plt.subplots(rows, cols * nv, figsize=(1.6 * cols * nv, 1.75 * rows))
    axs = np.asarray(axs).reshape(rows, cols * nv)
    for ax in axs.flat:
        ax.axis("off")
    for i, v in enumerate(verts):
        for k, view in enumerate(views):
            img = render_mesh(v, asset.f, 140, rotation=VIEWS[view], extent=0.22)
            ax = axs[i // cols, (i % cols) * nv + k]
            ax.imshow(img)
            ax.set_title(f"{names[i]}" if k == 0 else view, fontsize=7)
    plt.tight_layout()
    plt.savefig(path, dpi=80)
    plt.close(fig)


def main() -> None:
    asset = load_asset(None)
    layer = HandLayer(asset, pose_origin="flat", dtype=torch.float64)
    names = list(pr.MODE_NAMES)
    modes = np.stack([pr.mode_parameters(n) for n in names])
    _sheet(asset, layer, modes, names, OUT / "prior_modes.png")
    _sheet(asset, layer, pr.sample_anatomical(15, seed=5), [f"sample {i}" for i in range(15)],
           OUT / "prior_samples.png")  # fmt: skip

    bank = bank_from_prior(None, 200_000, seed=0)
    flows = generate_flows(bank, build_nn(bank.flat), seed=2, start=0, count=6)
    encoder, _ = load_builtin_encoder()
    fig, axs = plt.subplots(6, 10, figsize=(15, 9.4))
    for i in range(len(flows)):
        f = flows.flow(i, bank)
        betas = torch.as_tensor(np.repeat(f.betas[None], 10, 0))
        go, transl = canonical_placement(layer, betas)
        with torch.no_grad():
            theta = encoder(torch.as_tensor(f.joints)).double()
            verts = layer(go, theta, betas, transl).vertices.numpy()
        rot = Rotation.from_rotvec(f.cam_rot).as_matrix()
        cam = np.einsum("tij,tvj->tvi", rot, verts)
        colors = np.broadcast_to(SKIN, (len(asset.v_template), 3))
        light = np.tile([[0.3, -0.3, -0.9]], (10, 1))
        backdrop = np.full((10, 224, 224, 3), 50, np.uint8)
        res = render_posed(cam, f.cam_scale, f.cam_trans, asset.f, colors, light, 0.35, 224, 224,
                           background=backdrop, supersample=2)  # fmt: skip
        for k in range(10):
            ax = axs[i, k]
            ax.imshow(res.rgb[k])
            ax.set_xticks([])
            ax.set_yticks([])
            if k == 0:
                ax.set_ylabel(f"{f.view}, flow {f.index}", fontsize=8)
            if i == 0:
                ax.set_title(f"frame {k}", fontsize=8)
    plt.tight_layout()
    plt.savefig(OUT / "pose_flows.png", dpi=60)
    plt.close(fig)


if __name__ == "__main__":
    main()
