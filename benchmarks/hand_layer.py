"""Hand layer speed vs smplx.MANO on the same MANO-shaped asset, same run, CPU.

Times forward and forward+backward at batch sizes 1, 64 and 1024 and prints the ratios
(smplx time / our time: > 1 means we are faster), for
the default eager layer and for ``HandLayer(..., compile=True)``. Target: >= 1 everywhere, >= 2 at 1024.

    python benchmarks/hand_layer.py [--threads N] [--dtype float32|float64]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import best_time, fmt_ms  # noqa: E402
from mano_fixtures import random_mano_asset  # noqa: E402
from seqhand.hand import HandLayer  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--dtype", default="float32", choices=["float32", "float64"])
    ap.add_argument("--batches", default="1,64,1024")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    import smplx

    dtype = getattr(torch, args.dtype)
    asset = random_mano_asset(seed=0)

    class S:  # smplx reads attributes off a struct
        pass

    ds = S()
    for k in ("v_template", "f", "shapedirs", "posedirs", "J_regressor", "weights",
              "kintree_table", "hands_components", "hands_mean"):  # fmt: skip
        setattr(ds, k, getattr(asset, k))
    ref = smplx.MANO(model_path="unused", data_struct=ds, use_pca=False, flat_hand_mean=True,
                     num_betas=10, dtype=dtype, is_rhand=True)  # fmt: skip
    eager = HandLayer(asset, pose_origin="flat", dtype=dtype)
    compiled = HandLayer(asset, pose_origin="flat", dtype=dtype, compile=True)
    print(f"torch {torch.__version__}, threads={torch.get_num_threads()}, dtype={args.dtype}, "
          f"V={asset.num_vertices}")  # fmt: skip
    print(f"{'batch':>6} {'mode':>9} {'smplx':>12} {'seqhand':>12} {'ratio':>7}"
          f" {'compiled':>12} {'ratio':>7}")  # fmt: skip
    for b in [int(x) for x in args.batches.split(",")]:
        g = torch.Generator().manual_seed(b)
        go = torch.randn(b, 3, generator=g, dtype=dtype)
        hp = 0.5 * torch.randn(b, 45, generator=g, dtype=dtype)
        be = torch.randn(b, 10, generator=g, dtype=dtype)
        out_a = compiled(go, hp, be).vertices
        out_b = ref(global_orient=go, hand_pose=hp, betas=be).vertices
        err = (out_a - out_b).abs().max().item()
        for mode in ("forward", "fwd+bwd"):
            if mode == "forward":

                def f_ours(ours):
                    with torch.no_grad():
                        ours(go, hp, be)

                def f_ref():
                    with torch.no_grad():
                        ref(global_orient=go, hand_pose=hp, betas=be)
            else:
                gp, hpp, bp = (t.clone().requires_grad_() for t in (go, hp, be))

                def f_ours(ours):
                    o = ours(gp, hpp, bp)
                    (o.vertices.sum() + o.joints.sum()).backward()

                def f_ref():
                    o = ref(global_orient=gp, hand_pose=hpp, betas=bp)
                    (o.vertices.sum() + o.joints.sum()).backward()

            t_ref = best_time(f_ref)
            t_eager = best_time(lambda: f_ours(eager))
            t_comp = best_time(lambda: f_ours(compiled))
            print(f"{b:>6} {mode:>9} {fmt_ms(t_ref)} {fmt_ms(t_eager)} {t_ref / t_eager:6.2f}x"
                  f" {fmt_ms(t_comp)} {t_ref / t_comp:6.2f}x"
                  f"   (max |dv| = {err:.1e} m)")  # fmt: skip


if __name__ == "__main__":
    main()
