"""Pose flows at paper scale: 41,000 flows x 10 frames against a 2.2M-pose bank, exact search.

Times, in the same run:
  * the job with the exact ``pca-tree`` search (index build + all flows, Eq. 5-7);
  * the same flows with FAISS ``IndexFlatL2`` brute force on a subset of the flows (the full job
    would take about an hour here), extrapolated to all flows; the ratio is printed;
and checks the results: the tree's flows equal FAISS's flows on that subset, and the tree's
answers equal the exact float64 brute force (``bruteforce`` method) on a sample of the real
queries (recall against exact search must be 1.0).

The bank is the built-in pose prior (made once, ~1 min for 2.2M poses, and cached with --bank).

    python benchmarks/pose_flow.py [--flows 41000] [--bank-size 2200000] [--faiss-flows 300]
                                   [--bank /tmp/prior_2200000.npz] [--threads N]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

from seqhand.synth.bank import bank_from_prior, load_bank
from seqhand.synth.flow import FlowConfig, flow_randoms, flow_statistics, generate_flows
from seqhand.synth.nn import build_nn, recall


def _bank(args):
    path = Path(args.bank) if args.bank else None
    if path and path.is_file():
        bank = load_bank(path)
        if len(bank) == args.bank_size and bank.meta.get("source") == "prior":
            print(f"bank: loaded {path} ({len(bank):,} poses)")
            return bank
    t0 = time.perf_counter()
    bank = bank_from_prior(None, args.bank_size, seed=args.bank_seed, progress=True)
    print(f"bank: built-in prior, {len(bank):,} poses in {time.perf_counter() - t0:.1f} s "
          "(one-off, not part of the job)")  # fmt: skip
    if path:
        bank.save(path)
    return bank


class _Recorder:
    """Wraps an index, counts its queries and keeps a sample of them (for the exactness
    check); queries with an exclusion (the flow's "nearest other pose" rule) are kept apart."""

    def __init__(self, index, keep: int, expected: int, seed: int = 0):
        self.index, self.p = index, min(1.0, 2.0 * keep / max(1, expected))
        self.rng = np.random.default_rng(seed)
        self.samples: dict[bool, list] = {False: [], True: []}
        self.count = 0

    def __len__(self) -> int:
        return len(self.index)

    def query(self, q, hint=None, exclude=None):
        idx, d = self.index.query(q, hint=hint, exclude=exclude)
        self.count += len(q)
        take = self.rng.random(len(q)) < self.p
        ex = None if exclude is None else np.asarray(exclude).reshape(len(q), -1)[take]
        self.samples[exclude is not None].append((np.asarray(q)[take], idx[take], ex))
        return idx, d

    def check(self, bank, limit: int) -> tuple[int, float, float]:
        """(queries checked, share identical to brute force, recall) over both kinds."""
        bf = build_nn(bank.flat, "bruteforce")
        n = same = rc = 0.0
        for excluding, rows in self.samples.items():
            if not rows:
                continue
            q = np.concatenate([r[0] for r in rows])[:limit]
            a = np.concatenate([r[1] for r in rows])[:limit]
            ex = None
            if excluding:  # pad exclusions to one width by repeating their first column
                w = max(r[2].shape[1] for r in rows)
                ex = np.concatenate([np.pad(r[2], ((0, 0), (0, w - r[2].shape[1])), mode="edge")
                                     for r in rows])[:limit]  # fmt: skip
            ref, _ = bf.query(q, exclude=ex)
            n += len(q)
            same += float(np.sum(a == ref))
            rc += recall(a, ref, bank.flat, q) * len(q)
        return int(n), same / max(n, 1), rc / max(n, 1)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--flows", type=int, default=41_000)
    ap.add_argument("--bank-size", type=int, default=2_200_000)
    ap.add_argument("--bank-seed", type=int, default=0)
    ap.add_argument("--bank", default=None, help="cache file for the bank (.npz)")
    ap.add_argument("--faiss-flows", type=int, default=300, help="flows timed with FAISS flat")
    ap.add_argument("--check-queries", type=int, default=300,
                    help="real queries re-answered by exact brute force")  # fmt: skip
    ap.add_argument("--alpha", type=float, default=FlowConfig().alpha)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--json", default=None, help="write the numbers here")
    args = ap.parse_args()
    import faiss
    import numba
    import torch

    if args.threads:
        faiss.omp_set_num_threads(args.threads)
        numba.set_num_threads(args.threads)
        torch.set_num_threads(args.threads)
    print(f"threads: numba {numba.get_num_threads()}, faiss {faiss.omp_get_max_threads()}, "
          f"torch {torch.get_num_threads()}")  # fmt: skip
    bank = _bank(args)
    cfg = FlowConfig(alpha=args.alpha)
    n_flows = args.flows

    # The job: exact index + every flow.
    t0 = time.perf_counter()
    tree = build_nn(bank.flat, "pca-tree")
    t_build = time.perf_counter() - t0
    rec = _Recorder(tree, args.check_queries, n_flows * (cfg.n_frames - 1) // 2)
    generate_flows(bank, rec, args.seed, 0, min(8, n_flows), cfg)  # numba warm-up (cached)
    rec.samples = {False: [], True: []}
    rec.count = 0
    t1 = time.perf_counter()
    flows = generate_flows(bank, rec, args.seed, 0, n_flows, cfg)
    t_flows = time.perf_counter() - t1
    t_job = t_build + t_flows
    n_queries = rec.count
    print(f"\nexact pca-tree: index build {t_build:6.1f} s + {n_flows:,} flows x "
          f"{cfg.n_frames} frames {t_flows:6.1f} s = job {t_job:6.1f} s")  # fmt: skip

    # FAISS IndexFlatL2 on a subset of the same flows.
    nf = min(args.faiss_flows, n_flows)
    t2 = time.perf_counter()
    flat = build_nn(bank.flat, "faiss-flat")
    t_fbuild = time.perf_counter() - t2
    t3 = time.perf_counter()
    fflows = generate_flows(bank, flat, args.seed, 0, nf, cfg)
    t_fsub = time.perf_counter() - t3
    t_faiss = t_fbuild + t_fsub * n_flows / nf
    same_flows = float(np.mean(np.all(fflows.bank_indices == flows.bank_indices[:nf], axis=1)))
    print(f"faiss flat    : index build {t_fbuild:6.1f} s + {nf:,} flows {t_fsub:6.1f} s "
          f"-> {n_flows:,} flows ~ {t_faiss:7.0f} s (extrapolated)")  # fmt: skip
    print(f"speed-up (faiss flat / pca-tree, whole job): {t_faiss / t_job:7.1f}x")
    print(f"flows identical to faiss flat's: {same_flows:.4f} of {nf}")

    # Exactness on a sample of the real queries: the tree vs float64-certified brute force.
    t4 = time.perf_counter()
    n_checked, same, rc = rec.check(bank, args.check_queries)
    t_bf = (time.perf_counter() - t4) / max(1, n_checked)
    print(
        f"exact check   : {n_checked} real queries (with and without exclusions), identical "
        f"to brute force: {same:.4f}, recall {rc:.4f} (brute force {t_bf * 1e3:.1f} ms/query)"
    )

    ids, _ = flow_randoms(args.seed, np.arange(n_flows), len(bank))
    stats = flow_statistics(bank.flat, flows.bank_indices, ids[:, 1])
    print(f"flows: alpha={cfg.alpha}, mean joint step {stats['mean_step_mm']:.2f} mm/frame, "
          f"distance to P_final {stats['dist_to_final_rel'][-1]:.3f} of the start, "
          f"repeated frames {stats['repeat_fraction']:.3f}, searches {n_queries:,}")  # fmt: skip
    if args.json:
        Path(args.json).write_text(json.dumps({
            "flows": n_flows, "bank_size": len(bank), "t_build": t_build, "t_flows": t_flows,
            "t_job": t_job, "t_faiss_extrapolated": t_faiss, "faiss_flows_timed": nf,
            "same_flows_as_faiss": same_flows, "recall": rc, "stats": stats,
        }, indent=1))  # fmt: skip


if __name__ == "__main__":
    sys.exit(main())
