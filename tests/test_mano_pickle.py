"""Safe MANO loading: official-format pickles load without chumpy; malicious ones run nothing."""

from __future__ import annotations

import os
import pickle

import numpy as np
import pytest
import torch

from mano_fixtures import (
    Py2Pickler,
    chumpy_ch,
    chumpy_select,
    official_mano_dict,
    random_mano_asset,
    write_mano_style_pickle,
    write_py2_mano_pickle,
)
from seqhand.cli import main as cli_main
from seqhand.hand import AssetError, HandLayer, load_asset
from seqhand.hand.mano_pickle import UnsafePickleError, load_mano_pickle


def test_chumpy_is_not_installed():
    with pytest.raises(ImportError):
        import chumpy  # noqa: F401


def test_loads_official_format(tmp_path):
    asset = random_mano_asset(seed=0)
    p = write_mano_style_pickle(asset, tmp_path / "MANO_RIGHT.pkl")
    got = load_mano_pickle(p)
    assert got.side == "right"
    np.testing.assert_array_equal(got.shapedirs, asset.shapedirs)
    np.testing.assert_array_equal(got.J_regressor, asset.J_regressor)
    np.testing.assert_array_equal(got.f, asset.f)
    assert got.parents[0] == -1
    assert list(got.tip_vertex_ids) == [744, 320, 443, 555, 672]


def test_left_hand_shapedirs_fix(tmp_path):
    asset = random_mano_asset(seed=1)
    p = write_mano_style_pickle(asset, tmp_path / "MANO_LEFT.pkl")
    got = load_mano_pickle(p, left_fix="apply")
    assert got.side == "left"
    np.testing.assert_array_equal(got.shapedirs[:, 0], -asset.shapedirs[:, 0])
    np.testing.assert_array_equal(got.shapedirs[:, 1:], asset.shapedirs[:, 1:])


def test_convert_cli_roundtrip(tmp_path, capsys):
    asset = random_mano_asset(seed=2)
    p = write_mano_style_pickle(asset, tmp_path / "MANO_RIGHT.pkl")
    out = tmp_path / "mano_right.npz"
    assert cli_main(["mano", "convert", str(p), str(out)]) == 0
    assert "778 vertices" in capsys.readouterr().out
    a, b = load_asset(p), load_asset(out)
    for k in ("v_template", "shapedirs", "posedirs", "J_regressor", "weights", "f"):
        np.testing.assert_array_equal(getattr(a, k), getattr(b, k))
    # The layer loads either and gives the same hand.
    pose = torch.randn(2, 45) * 0.3
    va = HandLayer(p, pose_origin="mean")(hand_pose=pose).vertices
    vb = HandLayer(out, pose_origin="mean")(hand_pose=pose).vertices
    assert torch.equal(va, vb)


class _Evil:
    def __init__(self, path):
        self.path = path

    def __reduce__(self):
        return (os.system, (f"touch {self.path}",))


def test_malicious_pickle_is_refused_and_nothing_runs(tmp_path):
    marker = tmp_path / "pwned"
    p = tmp_path / "MANO_RIGHT.pkl"
    p.write_bytes(pickle.dumps({"v_template": _Evil(marker)}, protocol=2))
    with pytest.raises(UnsafePickleError, match="refused"):
        load_mano_pickle(p)
    assert not marker.exists()


def test_malicious_eval_refused(tmp_path):
    class EvalIt:
        def __reduce__(self):
            return (eval, ("__import__('os').getcwd()",))

    p = tmp_path / "m.pkl"
    p.write_bytes(pickle.dumps(EvalIt(), protocol=0))
    with pytest.raises(UnsafePickleError, match="eval', which a MANO"):
        load_mano_pickle(p)


def test_cli_gives_one_line_error(tmp_path, capsys):
    p = tmp_path / "MANO_RIGHT.pkl"
    p.write_bytes(pickle.dumps(_Evil(tmp_path / "x"), protocol=2))
    assert cli_main(["mano", "convert", str(p), str(tmp_path / "o.npz")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "refused" in err
    assert not (tmp_path / "o.npz").exists()


def test_truncated_and_corrupt_files(tmp_path):
    p = write_mano_style_pickle(random_mano_asset(), tmp_path / "MANO_RIGHT.pkl")
    data = p.read_bytes()
    t = tmp_path / "trunc.pkl"
    t.write_bytes(data[: len(data) // 2])
    with pytest.raises(AssetError, match="truncated or corrupt"):
        load_mano_pickle(t)
    c = tmp_path / "corrupt.npz"
    c.write_bytes(b"not a zip at all")
    with pytest.raises(AssetError, match="not a readable .npz"):
        load_asset(c)
    with pytest.raises(AssetError, match="no such file"):
        load_asset(tmp_path / "missing.npz")


@pytest.mark.parametrize(
    "field,value,msg",
    [
        ("shapedirs", np.zeros((778, 3)), "shapedirs' must have shape"),
        ("J_regressor", np.zeros((15, 778)), "J_regressor' must have shape"),
        ("weights", np.zeros((778, 16)), "weights' rows must sum to 1"),
        ("f", np.full((10, 3), 9999), "f' has vertex ids outside"),
        ("posedirs", np.zeros((778, 3, 134)), "posedirs' must have shape"),
        ("kintree_table", np.zeros((2, 16), dtype=np.int64), "kintree_table' must encode"),
    ],
)
def test_wrong_shapes_name_the_field(tmp_path, field, value, msg):
    asset = random_mano_asset().replace(**{field: value})
    p = write_mano_style_pickle(asset, tmp_path / "MANO_RIGHT.pkl")
    with pytest.raises(AssetError, match=msg):
        load_mano_pickle(p)
    npz = tmp_path / "a.npz"
    arrays = {k: getattr(asset, k) for k in ("v_template", "f", "shapedirs", "posedirs",
              "J_regressor", "weights", "kintree_table", "hands_components", "hands_mean",
              "tip_vertex_ids")}  # fmt: skip
    np.savez(npz, **arrays)
    with pytest.raises(AssetError, match=str(npz.name)):
        load_asset(npz)


# --------------------------------------------------------------------------------------------
# The official layout (issue 13): shapedirs is a chumpy ``reordering.Select`` over a ``Ch``,
# in Python 2 pickles of protocol 2 and 0, right and left.

smplx = None
try:
    import smplx  # noqa: F811
except ImportError:  # pragma: no cover - the test extra installs it
    pass


def _official_pair(seed: int):
    """A right model and its left twin as published: mirrored template, same shapedirs.

    Shape direction 0 grows the hand about its centre (a size direction, as MANO's first
    shape component is), the rest is random. Returns (right asset, source array, idxs).
    """
    rng = np.random.default_rng(seed)
    right = random_mano_asset(seed=seed)
    sd = right.shapedirs.copy()
    sd[:, :, 0] = 0.08 * (right.v_template - right.v_template.mean(0)) + rng.normal(
        scale=2e-4, size=(778, 3)
    )
    # chumpy Select over a larger Ch: value = a.r.ravel()[idxs].reshape(preferred_shape)
    src = rng.normal(size=(1000, 3, 12))
    idxs = rng.choice(src.size, size=sd.size, replace=False)
    src.ravel()[idxs] = sd.ravel()
    return right.replace(shapedirs=sd), src, idxs


def _select_value(src, idxs, shape):
    """chumpy ``Select.compute_r``: ``a.r.ravel()[idxs].copy()`` reshaped to preferred_shape."""
    return src.ravel()[idxs].copy().reshape(shape)


MIRROR_X = np.array([-1.0, 1.0, 1.0])


def _write(tmp_path, name, asset, src, idxs, protocol):
    d = official_mano_dict(asset, chumpy_select(chumpy_ch(src), idxs, (778, 3, 10)))
    return write_py2_mano_pickle(tmp_path / name, d, protocol)


@pytest.mark.parametrize("protocol", [2, 0])
@pytest.mark.parametrize("side", ["right", "left"])
def test_official_select_layout_converts_to_truth(tmp_path, protocol, side):
    right, src, idxs = _official_pair(seed=3)
    truth_sd = _select_value(src, idxs, (778, 3, 10))
    asset = right
    if side == "left":  # MANO_LEFT as published: mirrored template, the right's shapedirs
        asset = right.replace(v_template=right.v_template * MIRROR_X)
    p = _write(tmp_path, f"MANO_{side.upper()}.pkl", asset, src, idxs, protocol)
    assert (b"chumpy.reordering\nSelect\n" in p.read_bytes()) and (
        (b"copy_reg\n_reconstructor\n" in p.read_bytes()) == (protocol == 0)
    )
    out = tmp_path / "asset.npz"
    assert cli_main(["mano", "convert", str(p), str(out)]) == 0
    got = load_asset(out)
    want_sd = truth_sd * MIRROR_X[None, :, None] if side == "left" else truth_sd
    np.testing.assert_array_equal(got.shapedirs, want_sd)
    np.testing.assert_array_equal(got.v_template, asset.v_template)
    np.testing.assert_array_equal(got.J_regressor, asset.J_regressor)
    np.testing.assert_array_equal(got.posedirs, asset.posedirs)
    np.testing.assert_array_equal(got.f, asset.f)
    assert got.side == side
    if side == "left":
        assert got.shapedirs_fix.startswith("applied") and "detected" in got.shapedirs_fix
    else:
        assert got.shapedirs_fix == "none (right hand)"


@pytest.mark.skipif(smplx is None, reason="smplx (test extra) not installed")
@pytest.mark.parametrize("side", ["right", "left"])
def test_layer_on_official_select_layout_equals_smplx(tmp_path, side):
    right, src, idxs = _official_pair(seed=4)
    sd = _select_value(src, idxs, (778, 3, 10))
    asset = right
    if side == "left":
        asset = right.replace(v_template=right.v_template * MIRROR_X)
        sd = sd * MIRROR_X[None, :, None]  # smplx issue #48: left_mano.shapedirs[:, 0, :] *= -1
    p = _write(tmp_path, f"MANO_{side.upper()}.pkl", asset, src, idxs, protocol=2)

    class DS:  # what smplx reads from the pickle, built from the truth, not from our loader
        pass

    ds = DS()
    ds.__dict__.update(
        v_template=asset.v_template, f=asset.f.astype(np.int64), shapedirs=sd,
        posedirs=asset.posedirs, J_regressor=asset.J_regressor, weights=asset.weights,
        kintree_table=asset.kintree_table, hands_components=asset.hands_components,
        hands_mean=asset.hands_mean,
    )  # fmt: skip
    ref = smplx.MANO(
        model_path="unused", data_struct=ds, use_pca=False, flat_hand_mean=True, num_betas=10,
        dtype=torch.float64, is_rhand=side == "right",
    )  # fmt: skip
    gen = torch.Generator().manual_seed(0)
    go = torch.randn(4, 3, generator=gen, dtype=torch.float64)
    pose = 0.5 * torch.randn(4, 45, generator=gen, dtype=torch.float64)
    betas = 2 * torch.randn(4, 10, generator=gen, dtype=torch.float64)
    ours = HandLayer(p, pose_origin="flat", dtype=torch.float64)(go, pose, betas)
    r = ref(global_orient=go, hand_pose=pose, betas=betas)
    assert (ours.vertices - r.vertices).abs().max() < 1e-7  # smplx adds 1e-8 to angles


def test_left_fix_detects_an_already_corrected_left_model(tmp_path):
    right, src, idxs = _official_pair(seed=5)
    truth = _select_value(src, idxs, (778, 3, 10))
    corrected = truth * MIRROR_X[None, :, None]
    src2 = src.copy()
    src2.ravel()[idxs] = corrected.ravel()
    left = right.replace(v_template=right.v_template * MIRROR_X)
    p = _write(tmp_path, "MANO_LEFT.pkl", left, src2, idxs, protocol=2)
    got = load_mano_pickle(p)
    np.testing.assert_array_equal(got.shapedirs, corrected)  # not flipped a second time
    assert got.shapedirs_fix.startswith("not applied (detected")


def test_left_fix_explicit_choice_and_exact_detection_with_right_model(tmp_path, capsys):
    right, src, idxs = _official_pair(seed=6)
    truth = _select_value(src, idxs, (778, 3, 10))
    left = right.replace(v_template=right.v_template * MIRROR_X)
    pl = _write(tmp_path, "MANO_LEFT.pkl", left, src, idxs, protocol=0)
    pr = _write(tmp_path, "MANO_RIGHT.pkl", right, src, idxs, protocol=2)
    out = tmp_path / "left.npz"
    assert cli_main(["mano", "convert", str(pl), str(out), "--left-fix", "skip"]) == 0
    assert "explicit choice" in capsys.readouterr().out
    a = load_asset(out)
    np.testing.assert_array_equal(a.shapedirs, truth)
    assert "explicit choice" in a.shapedirs_fix and a.shapedirs_fix.startswith("not applied")
    with np.load(out, allow_pickle=False) as z:  # recorded in the plain file itself
        assert str(z["shapedirs_fix"]).startswith("not applied")
    got = load_mano_pickle(pl, left_fix="apply")
    np.testing.assert_array_equal(got.shapedirs, truth * MIRROR_X[None, :, None])
    got = load_mano_pickle(pl, right_model=pr)
    np.testing.assert_array_equal(got.shapedirs, truth * MIRROR_X[None, :, None])
    assert "equal the right model's" in got.shapedirs_fix


def test_left_fix_refuses_to_guess(tmp_path, capsys):
    asset = random_mano_asset(seed=7)  # random shape space: no size direction to judge by
    src = asset.shapedirs.copy()
    p = _write(tmp_path, "MANO_LEFT.pkl", asset, src, np.arange(src.size), protocol=2)
    assert cli_main(["mano", "convert", str(p), str(tmp_path / "o.npz")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "--left-fix apply or skip" in err


def _huge_array_pickle(protocol: int) -> bytes:
    """``numpy.core.multiarray._reconstruct(ndarray, (2**45,), 'b')``: a 32 TiB array."""
    pk = Py2Pickler(protocol)
    pk.glob("numpy.core.multiarray", "_reconstruct")
    pk.save_global_args(("numpy", "ndarray"), (2**45,), "b")
    pk.out += b"R"
    return bytes(pk.out + b".")


@pytest.mark.parametrize("protocol", [2, 0])
def test_huge_arrays_are_refused_without_allocating(tmp_path, capsys, protocol):
    p = tmp_path / "MANO_RIGHT.pkl"
    p.write_bytes(_huge_array_pickle(protocol))
    assert cli_main(["mano", "convert", str(p), str(tmp_path / "o.npz")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "larger than anything a MANO file holds" in err
    # A sparse J_regressor that claims 2**31 x 2**31 entries is refused before .toarray().
    d = official_mano_dict(random_mano_asset(), chumpy_ch(random_mano_asset().shapedirs))
    d["J_regressor"].state["_shape"] = (2**31, 2**31)
    q = write_py2_mano_pickle(tmp_path / "MANO_RIGHT2.pkl", d, protocol)
    with pytest.raises(UnsafePickleError, match="larger than anything"):
        load_mano_pickle(q)


def test_select_with_bad_indices_is_a_clear_error(tmp_path):
    asset = random_mano_asset(seed=8)
    src = asset.shapedirs
    idxs = np.arange(src.size)
    idxs[5] = src.size + 10
    p = _write(tmp_path, "MANO_RIGHT.pkl", asset, src, idxs, protocol=2)
    with pytest.raises(AssetError, match="shapedirs.*indexes outside"):
        load_mano_pickle(p)
