"""Safe MANO loading: official-format pickles load without chumpy; malicious ones run nothing."""

from __future__ import annotations

import os
import pickle

import numpy as np
import pytest
import torch

from mano_fixtures import random_mano_asset, write_mano_style_pickle
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
    got = load_mano_pickle(p)
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
