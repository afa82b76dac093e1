"""Nearest-neighbour search: every exact method equals a slow float64 reference."""

from __future__ import annotations

import numpy as np
import pytest

from seqhand.synth.nn import (
    METHODS,
    BruteForceNN,
    NNError,
    PCATreeNN,
    build_nn,
    cached_nn,
    exact_sqdist,
    recall,
)


def naive_nn(points: np.ndarray, queries: np.ndarray) -> np.ndarray:
    """The definition: argmin of float64 squared distances, ties to the lowest index."""
    out = np.empty(len(queries), np.int64)
    p = points.astype(np.float64)
    for i, q in enumerate(np.asarray(queries, np.float64)):
        d = ((p - q) ** 2).sum(1)
        out[i] = np.flatnonzero(d == d.min())[0]
    return out


def _clustered(n: int, d: int = 63, seed: int = 0) -> np.ndarray:
    """Low intrinsic dimension + clusters, like hand poses (float32, ~0.1 scale)."""
    rng = np.random.default_rng(seed)
    latent = rng.normal(size=(n, 8)) * np.linspace(1.0, 0.1, 8)
    centres = rng.normal(size=(12, 8))[rng.integers(0, 12, n)]
    mix = rng.normal(size=(8, d))
    pts = (latent + centres) @ mix * 0.02 + rng.normal(scale=1e-3, size=(n, d))
    return pts.astype(np.float32)


@pytest.fixture(scope="module")
def data():
    pts = _clustered(6000)
    rng = np.random.default_rng(1)
    a, b = rng.integers(0, len(pts), 400), rng.integers(0, len(pts), 400)
    q = pts[a] + rng.uniform(0.05, 0.4, (400, 1)) * (pts[b] - pts[a])  # flow-like queries
    q = np.concatenate([q, pts[:50], rng.normal(scale=0.3, size=(50, 63))])  # exact hits, far
    hint = np.concatenate([a, np.arange(50), rng.integers(0, len(pts), 50)])
    return pts, q, hint, naive_nn(pts, q)


@pytest.mark.parametrize("method", ["pca-tree", "bruteforce"])
def test_exact_methods_equal_reference(data, method):
    pts, q, hint, ref = data
    idx, d2 = build_nn(pts, method).query(q)
    np.testing.assert_array_equal(idx, ref)
    np.testing.assert_array_equal(d2, exact_sqdist(pts, ref, q))


def naive_nn_excluding(points, queries, exclude):
    """The nearest point other than ``exclude[i]`` (float64, ties to the lowest index)."""
    out = np.empty(len(queries), np.int64)
    p = points.astype(np.float64)
    for i, q in enumerate(np.asarray(queries, np.float64)):
        d = ((p - q) ** 2).sum(1)
        d[exclude[i]] = np.inf
        out[i] = np.flatnonzero(d == d.min())[0]
    return out


@pytest.mark.parametrize("method", ["pca-tree", "bruteforce", "faiss-flat"])
def test_exclude_gives_the_nearest_other_point(data, method):
    pts, q, hint, ref = data
    # exclude the nearest point itself (the flow's case: a query that snaps back to P_{k-1}),
    # and elsewhere an arbitrary one
    exclude = np.where(np.arange(len(q)) % 2 == 0, ref, hint)
    want = naive_nn_excluding(pts, q, exclude)
    nn = build_nn(pts, method)
    for h in (None, hint, exclude):  # the hint may even be the excluded point
        idx, d2 = nn.query(q, hint=h, exclude=exclude)
        assert not np.any(idx == exclude)
        if nn.exact:
            np.testing.assert_array_equal(idx, want)
        else:  # float32 FAISS: as near as the exact answer up to float32 rounding
            np.testing.assert_allclose(d2, exact_sqdist(pts, want, q), rtol=1e-4, atol=1e-9)
    assert np.any(want != ref)  # the test can fail: excluding changes answers


@pytest.mark.parametrize("leaf,box", [(1, 4), (7, 8), (64, 16), (10_000, 8)])
def test_tree_shapes_and_hints(data, leaf, box):
    pts, q, hint, ref = data
    tree = PCATreeNN.build(pts, leaf_size=leaf, box_dims=box)
    np.testing.assert_array_equal(tree.query(q)[0], ref)
    np.testing.assert_array_equal(tree.query(q, hint=hint)[0], ref)  # hints never change it


def test_float64_queries_are_used_as_given():
    """Two points whose float32 distances to the query tie but whose float64 ones do not."""
    pts = np.array([[0.0, 0.0], [1.0, 0.0]], np.float32)
    q = np.array([[0.5 + 1e-12, 0.0]])  # a hair closer to point 1 in float64
    for method in ("pca-tree", "bruteforce"):
        assert build_nn(pts, method).query(q)[0][0] == 1


def test_duplicates_and_ties_go_to_the_lowest_index():
    rng = np.random.default_rng(2)
    base = rng.normal(size=(300, 10)).astype(np.float32)
    pts = np.concatenate([base, np.repeat(base[:3], 40, axis=0), base[::-1]])  # many copies
    q = np.concatenate([base[:20], base[:20] + 1e-3])
    ref = naive_nn(pts, q)
    for method in ("pca-tree", "bruteforce"):
        idx, _ = build_nn(pts, method, **({"max_candidates": 4} if method == "pca-tree" else {})
                          ).query(q, hint=np.full(len(q), 310))  # fmt: skip
        np.testing.assert_array_equal(idx, ref)


def test_tiny_banks():
    for n in (1, 2, 5):
        pts = np.random.default_rng(n).normal(size=(n, 63)).astype(np.float32)
        q = np.random.default_rng(9).normal(size=(7, 63))
        for method in ("pca-tree", "bruteforce"):
            np.testing.assert_array_equal(build_nn(pts, method).query(q)[0], naive_nn(pts, q))


def test_bruteforce_blocks_and_fallback(data):
    pts, q, _, ref = data
    bf = BruteForceNN.build(pts, topk=1, query_block=37, point_block=1000)
    np.testing.assert_array_equal(bf.query(q)[0], ref)


def test_points_are_never_written(data):
    pts, q, hint, _ = data
    ro = pts.copy()
    ro.setflags(write=False)
    before = ro.tobytes()
    for method in ("pca-tree", "bruteforce", "faiss-flat"):
        build_nn(ro, method).query(q, hint=hint)
    assert ro.tobytes() == before


def test_faiss_baselines(data):
    pytest.importorskip("faiss")
    pts, q, _, ref = data
    flat, _ = build_nn(pts, "faiss-flat").query(q)
    assert recall(flat, ref, pts, q) > 0.99  # float32 distances: near-ties may differ
    ivf, _ = build_nn(pts, "faiss-ivf", nlist=32, nprobe=2).query(q)
    r = recall(ivf, ref, pts, q)
    assert 0.0 < r <= 1.0
    full, _ = build_nn(pts, "faiss-ivf", nlist=32, nprobe=32).query(q)  # every cell: exact-ish
    assert recall(full, ref, pts, q) >= r and recall(full, ref, pts, q) > 0.99


def test_recall_counts_equal_distance_ties():
    pts = np.array([[0.0], [2.0], [2.0]], np.float32)
    q = np.array([[1.0], [1.9]])
    assert recall(np.array([1, 2]), np.array([0, 1]), pts, q) == 1.0
    assert recall(np.array([1, 0]), np.array([0, 1]), pts, q) == 0.5


def test_errors(data):
    pts, q, _, _ = data
    with pytest.raises(NNError, match="unknown nearest-neighbour method"):
        build_nn(pts, "magic")
    tree = build_nn(pts)
    with pytest.raises(NNError, match=r"\(Q, 63\)"):
        tree.query(q[:, :10])
    with pytest.raises(NNError, match="hint"):
        tree.query(q[:3], hint=np.array([0, 1, len(pts)]))
    with pytest.raises(NNError, match="non-empty"):
        build_nn(np.zeros((0, 3)))
    idx, d2 = tree.query(np.zeros((0, 63)))
    assert idx.shape == (0,) and d2.shape == (0,)
    assert set(METHODS) == {"pca-tree", "bruteforce", "faiss-flat", "faiss-ivf"}


@pytest.mark.parametrize("method", ["pca-tree", "bruteforce"])
def test_exclude_with_duplicates_and_tiny_banks(method):
    pts = np.array([[0.0, 0.0], [0.0, 0.0], [1.0, 0.0]], np.float32)
    nn = build_nn(pts, method)
    idx, _ = nn.query(np.zeros((3, 2)), exclude=np.array([0, 1, 2]))
    assert idx.tolist() == [1, 0, 0]  # an exact duplicate of the excluded point is "other"
    idx, _ = build_nn(pts[1:], method).query(np.zeros((1, 2)), exclude=np.array([0]))
    assert idx.tolist() == [1]
    with pytest.raises(NNError, match="exclude"):
        build_nn(pts[:1], method).query(np.zeros((1, 2)), exclude=np.array([0]))


def test_cached_index_is_the_built_index(data, tmp_path):
    """Built and saved, then loaded (memory-mapped): the same arrays and the same answers;
    other points or options rebuild it, a damaged folder is rebuilt."""
    pts, q, hint, ref = data
    folder = tmp_path / "bank.npz.pca-tree"
    built = build_nn(pts)
    first = cached_nn(pts, folder)
    assert (folder / "key.json").is_file() and not list(tmp_path.glob(".*.tmp"))
    loaded = cached_nn(pts, folder)
    assert isinstance(loaded.rows, np.ndarray) and not loaded.rows.flags.writeable
    for name in PCATreeNN.ARRAYS:
        np.testing.assert_array_equal(getattr(loaded, name), getattr(built, name))
    want = built.query(q, hint=hint)
    for nn in (first, loaded):
        got = nn.query(q, hint=hint)
        np.testing.assert_array_equal(got[0], ref)
        np.testing.assert_array_equal(got[0], want[0])
        np.testing.assert_array_equal(got[1], want[1])
    key = (folder / "key.json").read_text()
    other = cached_nn(pts[:-1], folder)  # stale for these points: rebuilt and replaced
    assert len(other) == len(pts) - 1 and (folder / "key.json").read_text() != key
    cached_nn(pts, folder, leaf_size=64)  # other options: rebuilt
    assert '"leaf_size": 64' in (folder / "key.json").read_text()
    (folder / "rows.npy").write_bytes(b"damaged")
    np.testing.assert_array_equal(cached_nn(pts, folder).query(q)[0], ref)
    np.testing.assert_array_equal(cached_nn(pts, folder).rows, built.rows)
    assert not list(tmp_path.glob(".*.tmp"))


def test_cached_index_needs_no_writable_folder(data, tmp_path):
    pts, q, _, ref = data
    blocker = tmp_path / "file"
    blocker.write_bytes(b"")
    np.testing.assert_array_equal(cached_nn(pts, blocker / "idx").query(q)[0], ref)
    assert isinstance(cached_nn(pts, tmp_path / "bf", "bruteforce"), BruteForceNN)
    assert not (tmp_path / "bf").exists()  # nothing to save for brute force
