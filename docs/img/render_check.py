"""Make ``docs/img/render_check.png``: built-in hands in varied poses, skin templates, lights and
procedural backgrounds, rendered by the CPU rasteriser (2x2 anti-aliasing).

    python docs/img/render_check.py
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageDraw

from seqhand.geometry.camera import weak_perspective_project
from seqhand.hand import HandLayer, load_asset
from seqhand.synth.appearance import TemplateSet
from seqhand.synth.backgrounds import ProceduralBackgrounds, sliding_patches
from seqhand.synth.raster import render_posed


def _feature_view(asset, layer, size: int) -> np.ndarray:
    """The flat hand's back, coloured by the painter's geometry features."""
    from seqhand.synth.appearance import skin_geometry

    geom = skin_geometry(asset)
    col = np.stack([geom.palm, geom.nail, np.maximum(geom.crease, geom.knuckle)], 1) * 0.9 + 0.1
    out = layer(hand_pose=-layer.pose_mean[None])  # the flat hand
    v = out.vertices - out.vertices.mean(1, keepdim=True)
    rot = torch.tensor([[0.0, 2.7, 0.0]])
    _, pts = weak_perspective_project(v, rot, torch.full((1,), 950.0), torch.full((1, 2), 112.0))
    return render_posed(pts.numpy(), 950.0, [112.0, 118.0], asset.f, col, [0.3, -0.3, -1], 0.5,
                        size, size, supersample=2).rgb[0].copy()  # fmt: skip


OUT = Path(__file__).with_name("render_check.png")


def main(out: Path = OUT) -> None:
    asset = load_asset("builtin")
    layer = HandLayer(asset, pose_origin="mean")
    templates = TemplateSet.builtin(asset, 8, seed=0)
    backgrounds = ProceduralBackgrounds(seed=0)
    n, size = 8, 224
    g = torch.Generator().manual_seed(4)
    pose = torch.randn(n, 10, generator=g) * 0.7
    rot = torch.tensor(
        [[0.2, 0.0, 0.0], [0.3, np.pi, 0.1], [0.0, 0.9, 0.3], [1.2, 0.2, -0.4],
         [-0.4, -0.6, 0.5], [2.6, 0.4, 0.2], [0.9, -1.4, 0.0], [0.1, 2.4, -0.6]],
    )  # fmt: skip
    out_h = layer(pose_pca=pose)
    centre = out_h.vertices.mean(1, keepdim=True)
    scale = torch.full((n,), 850.0)
    trans = torch.full((n, 2), size / 2.0)
    _, points = weak_perspective_project(out_h.vertices - centre, rot, scale, trans)
    j2d, _ = weak_perspective_project(out_h.joints - centre, rot, scale, trans)
    rng = np.random.default_rng(0)
    light = rng.normal(size=(n, 3))
    light[:, 2] = -np.abs(light[:, 2]) - 0.3
    tiles = []
    for i in range(n):
        bg = sliding_patches(backgrounds[i], 1, size, size, rng)
        ambient = 0.35 if i == 0 else float(rng.uniform(0.25, 0.5))
        res = render_posed(
            points[i : i + 1].numpy(), float(scale[i]), trans[i].numpy(), asset.f, templates[i],
            light[i], ambient, size, size, background=bg, supersample=2,
        )  # fmt: skip
        tile = Image.fromarray(res.rgb[0])
        d = ImageDraw.Draw(tile)
        d.text((4, 4), templates.names[i].split(" ", 1)[1], fill=(255, 255, 255))
        tiles.append(np.asarray(tile))
        if i == 0:  # a close-up row: mask, no AA, AA
            plain = render_posed(
                points[:1].numpy(), 850.0, trans[0].numpy(), asset.f, templates[0], light[0],
                ambient, size, size, background=bg,
            )  # fmt: skip
            mask_img = np.repeat(res.mask[0][..., None] * 255, 3, -1).astype(np.uint8)
            for x, y in np.rint(j2d[0].numpy()).astype(int):
                mask_img[y - 1 : y + 2, x - 1 : x + 2] = (255, 0, 0)
            crop = (slice(60, 116), slice(84, 140))
            zoom = [
                np.asarray(Image.fromarray(im[crop]).resize((size, size), Image.NEAREST))
                for im in (plain.rgb[0], res.rgb[0])
            ]
            extra = [mask_img, *zoom]
    extra.append(_feature_view(asset, layer, size))
    labels = (
        "mask + projected 2D joints",
        "no anti-aliasing (4x zoom)",
        "2x2 anti-aliasing (4x zoom)",
        "skin features: palm R, nail G, crease/knuckle B",
    )
    labelled = []
    for im, text in zip(extra, labels):
        pil = Image.fromarray(im)
        ImageDraw.Draw(pil).text((4, size - 14), text, fill=(255, 255, 0))
        labelled.append(np.asarray(pil))
    rows = [np.concatenate(tiles[:4], 1), np.concatenate(tiles[4:], 1), np.concatenate(labelled, 1)]
    Image.fromarray(np.concatenate(rows, 0)).save(out)
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
