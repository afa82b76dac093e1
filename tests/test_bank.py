"""Pose banks: canonicalisation, the file format, array / prior / BigHand sources, the CLI."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from scipy.spatial.transform import Rotation

from seqhand.cli import main
from seqhand.conventions import BONES, from_project_order
from seqhand.hand import HandLayer
from seqhand.hand.builtin import builtin_geometry
from seqhand.hand.prior import (
    PRIOR_FINGERS,
    anatomical_axes,
    anatomical_to_pose,
    joints_only_asset,
    prior_joints,
    rest_joints,
)
from seqhand.synth.bank import (
    BankError,
    PoseBank,
    bank_from_joints,
    bank_from_prior,
    bank_summary,
    canonicalize,
    load_bank,
    load_joint_array,
    palm_frame,
)
from seqhand.synth.bighand import load_bighand


@pytest.fixture(scope="module")
def prior_bank():
    return bank_from_prior(None, 3000, seed=11)


def _bones(j):
    return np.stack([np.linalg.norm(j[..., c, :] - j[..., p, :], axis=-1) for p, c in BONES], -1)


# --------------------------------------------------------------------------------------------
# canonicalisation
# --------------------------------------------------------------------------------------------
def test_canonical_frame_definition(prior_bank):
    c = prior_bank.joints.astype(np.float64)
    np.testing.assert_allclose(c[:, 0], 0.0, atol=1e-7)  # wrist at the origin
    np.testing.assert_allclose(c[:, 9, [0, 2]], 0.0, atol=1e-6)  # middle MCP on the -y axis
    assert np.all(c[:, 9, 1] < -0.05)
    np.testing.assert_allclose(c[:, 5, 2] - c[:, 17, 2], 0.0, atol=1e-6)  # MCP line has no z
    assert np.all(c[:, 5, 0] > c[:, 17, 0])  # index MCP toward +x, the little one toward -x
    # Already canonical joints are unchanged (idempotence) and the frame is then identity.
    np.testing.assert_allclose(canonicalize(c), c, atol=1e-6)
    np.testing.assert_allclose(palm_frame(c[:5]), np.broadcast_to(np.eye(3), (5, 3, 3)),
                               atol=1e-6)  # fmt: skip


def test_canonicalize_removes_rigid_motions(prior_bank):
    j = prior_bank.joints[:50].astype(np.float64)
    rng = np.random.default_rng(0)
    rot = Rotation.random(50, random_state=1).as_matrix()
    moved = np.einsum("nij,nkj->nki", rot, j) + rng.normal(size=(50, 1, 3))
    np.testing.assert_allclose(canonicalize(moved), j, atol=2e-6)
    c, r, w = canonicalize(moved, return_frame=True)
    np.testing.assert_allclose(np.einsum("nkj,nji->nki", c.astype(np.float64), r) + w[:, None],
                               moved, atol=2e-6)  # fmt: skip


def test_scale_normalisation(prior_bank):
    c = canonicalize(prior_bank.joints[:20] * 1.3, scale_to=0.09)
    np.testing.assert_allclose(np.linalg.norm(c[:, 9], axis=-1), 0.09, rtol=1e-5)


def test_fingers_flex_toward_minus_z(prior_bank):
    s = bank_summary(prior_bank)
    assert s["tips_palmar_fraction"] > 0.95
    mirrored = prior_bank.joints * np.array([-1.0, 1, 1], np.float32)
    s2 = bank_summary(bank_from_joints(mirrored))  # a left hand given as right: flagged
    assert s2["tips_palmar_fraction"] < 0.05
    s3 = bank_summary(bank_from_joints(mirrored, side="left"))
    assert s3["tips_palmar_fraction"] > 0.95


# --------------------------------------------------------------------------------------------
# the bank object and its file
# --------------------------------------------------------------------------------------------
def test_bank_is_read_only(prior_bank):
    with pytest.raises(ValueError):
        prior_bank.joints[0, 0, 0] = 1.0
    with pytest.raises(ValueError):
        prior_bank.flat[0, 0] = 1.0
    with pytest.raises(ValueError):
        prior_bank.poses[0, 0] = 1.0


@pytest.mark.parametrize("mmap", [False, True])
def test_save_load_round_trip(tmp_path, prior_bank, mmap):
    path = prior_bank.save(tmp_path / "b.npz")
    b = load_bank(path, mmap=mmap)
    assert b.joints.tobytes() == prior_bank.joints.tobytes()
    assert b.poses.tobytes() == prior_bank.poses.tobytes()
    assert b.meta == json.loads(json.dumps(prior_bank.meta))
    for key in ("source", "count", "units", "normalisation", "joint_order", "seed"):
        assert key in b.meta
    assert b.meta["units"] == "m" and b.meta["count"] == 3000
    with pytest.raises(ValueError):
        b.joints[0, 0, 0] = 0.0


def test_mapped_load_equals_read_load_for_any_npz(tmp_path, prior_bank):
    """Stored members are mapped, others (compressed here) read: the same bank either way."""
    names = np.array([f"img{i:05d}.png" for i in range(len(prior_bank))])
    arrays = {"joints": prior_bank.joints, "meta": np.array(json.dumps(prior_bank.meta)),
              "names": names}  # fmt: skip
    np.savez(tmp_path / "stored.npz", **arrays)
    np.savez_compressed(tmp_path / "deflated.npz", **arrays)
    for name in ("stored.npz", "deflated.npz"):
        read, mapped = load_bank(tmp_path / name), load_bank(tmp_path / name, mmap=True)
        assert mapped.joints.tobytes() == read.joints.tobytes()
        assert mapped.names.tolist() == read.names.tolist() == names.tolist()
        assert mapped.poses is None and mapped.meta == read.meta
        with pytest.raises(ValueError):
            mapped.joints[0, 0, 0] = 0.0


def test_load_errors(tmp_path):
    with pytest.raises(BankError, match="no such bank"):
        load_bank(tmp_path / "missing.npz")
    np.savez(tmp_path / "other.npz", x=np.zeros(3))
    with pytest.raises(BankError, match="not a pose bank"):
        load_bank(tmp_path / "other.npz")
    (tmp_path / "junk.npz").write_bytes(b"not a zip")
    with pytest.raises(BankError, match="not a readable"):
        load_bank(tmp_path / "junk.npz")
    with pytest.raises(BankError, match=r"\(N, 21, 3\)"):
        PoseBank(joints=np.zeros((4, 20, 3)), meta={})


# --------------------------------------------------------------------------------------------
# sources: prior, arrays
# --------------------------------------------------------------------------------------------
def test_prior_bank_is_the_layer_output(prior_bank):
    geom = builtin_geometry()
    layer = HandLayer(joints_only_asset(geom), pose_origin="flat", dtype=torch.float64)
    raw = prior_joints(layer, prior_bank.poses[:100].astype(np.float64))
    np.testing.assert_allclose(prior_bank.joints[:100], canonicalize(raw), atol=1e-6)
    again = bank_from_prior(None, 100, seed=11)
    assert again.joints.tobytes() == prior_bank.joints[:100].tobytes()  # deterministic


@pytest.mark.parametrize("order,unit,scale", [("project", "m", 1.0), ("bighand", "mm", 1000.0),
                                              ("rhd", "cm", 100.0)])  # fmt: skip
def test_joint_array_orders_and_units(tmp_path, prior_bank, order, unit, scale):
    j = prior_bank.joints[:200].astype(np.float64)
    rot = Rotation.from_rotvec([0.3, 1.0, -0.2]).as_matrix()
    raw = from_project_order(j @ rot.T + 0.5, order) * scale
    np.save(tmp_path / "a.npy", raw)
    np.savez(tmp_path / "a.npz", joints=raw.reshape(200, 63))
    for path in (tmp_path / "a.npy", tmp_path / "a.npz"):
        b = load_joint_array(path, order=order, unit=unit)
        np.testing.assert_allclose(b.joints, j, atol=3e-6)
        assert b.meta["input_order"] == order and b.meta["input_unit"] == unit


def test_joint_array_errors(tmp_path):
    np.save(tmp_path / "bad.npy", np.zeros((5, 20, 3)))
    with pytest.raises(BankError, match=r"\(N, 21, 3\) or \(N, 63\)"):
        load_joint_array(tmp_path / "bad.npy")
    np.save(tmp_path / "ok.npy", np.zeros((5, 21, 3)))
    with pytest.raises(BankError, match="unknown joint order"):
        load_joint_array(tmp_path / "ok.npy", order="nope")
    with pytest.raises(BankError, match="non-finite or degenerate"):
        bank_from_joints(np.zeros((5, 21, 3)), drop_invalid=False)
    rand = np.random.default_rng(0).random((3, 21, 3))
    b = bank_from_joints(np.concatenate([np.zeros((2, 21, 3)), rand]))
    assert len(b) == 3 and b.meta["dropped"] == 2


# --------------------------------------------------------------------------------------------
# BigHand
# --------------------------------------------------------------------------------------------
def _bighand_line(name: str, joints_project_m: np.ndarray, sep: str = "\t") -> str:
    mm = from_project_order(joints_project_m, "bighand") * 1000.0
    return name + sep + sep.join(f"{v:.4f}" for v in mm.reshape(-1)) + "\n"


def _finger_poses():
    """Flat pose + one pose per finger with only that finger flexed (project-order joints in a
    rotated, translated 'camera' frame)."""
    geom = builtin_geometry()
    axes = anatomical_axes(rest_joints(geom), geom.side)
    params = np.zeros((6, 5, 3, 3))
    for f in range(5):
        params[1 + f, f, :, 0] = (0.5, 0.9, 0.7) if f else (0.3, 0.6, 0.8)
    layer = HandLayer(joints_only_asset(geom), pose_origin="flat", dtype=torch.float64)
    j = prior_joints(layer, anatomical_to_pose(params, axes)).astype(np.float64)
    rot = Rotation.from_rotvec([2.0, -0.5, 0.7]).as_matrix()
    return j @ rot.T + np.array([0.1, -0.05, 0.6])


@pytest.fixture()
def bighand_file(tmp_path):
    j = _finger_poses()
    lines = [_bighand_line(f"image_D{i:08d}.png", j[i]) for i in range(6)]
    good = lines[1].rstrip("\n").split("\t")
    bad = [
        "\t".join(good[:40]) + "\n",  # too few fields
        "\t".join(good + ["1.0"]) + "\n",  # too many
        "\t".join(good[:10] + ["abc"] + good[11:]) + "\n",  # not a number
        "\t".join(good[:20] + ["nan"] + good[21:]) + "\n",  # NaN
        "\t".join(good[:30] + ["inf"] + good[31:]) + "\n",  # inf
        "\t".join([good[0]] + ["0"] * 63) + "\n",  # all zeros: no palm frame
    ]
    text = [lines[0], bad[0], lines[1], "\n", bad[1], lines[2], bad[2], bad[3], lines[3]]
    text += [bad[4], lines[4].rstrip("\n") + "\t\n", bad[5], lines[5]]  # trailing tab is fine
    path = tmp_path / "Training_Annotation.txt"
    path.write_text("".join(text))
    return path, j


def test_bighand_loader_counts_malformed_lines(bighand_file):
    path, j = bighand_file
    bank, rep = load_bighand(path)
    assert rep.lines == 13 and rep.blank == 1 and rep.parsed == 6 == len(bank)
    assert rep.skipped == {"field_count": 2, "not_a_number": 1, "non_finite": 2, "degenerate": 1}
    assert [e[0] for e in rep.examples] == [2, 5, 7, 8, 10, 12]
    assert "6 skipped" in rep.summary()
    assert list(bank.names) == [f"image_D{i:08d}.png" for i in range(6)]
    np.testing.assert_allclose(bank.joints, canonicalize(j), atol=2e-6)  # mm -> m, order
    assert bank.meta["parse"]["skipped"]["non_finite"] == 2
    # every k-th *parsed* line (the degenerate one, 6th of 7, counts): lines 0, 2, 4, 6.
    b2, _ = load_bighand(path, every=2)
    np.testing.assert_array_equal(b2.joints, bank.joints[[0, 2, 4, 5]])
    b3, _ = load_bighand(path, limit=4)
    np.testing.assert_array_equal(b3.joints, bank.joints[:4])


def test_bighand_order_bone_lengths_and_fingers(bighand_file):
    """Conversion checked by anatomy: bone lengths survive, and flexing one finger moves only
    that finger's joints in the project order."""
    path, j = bighand_file
    bank, _ = load_bighand(path)
    np.testing.assert_allclose(_bones(bank.joints), _bones(j), atol=2e-6)
    flat = bank.joints[0]
    for f, name in enumerate(PRIOR_FINGERS):
        moved = np.nonzero(np.linalg.norm(bank.joints[1 + f] - flat, axis=-1) > 1e-4)[0]
        base = 1 + 4 * f
        want = {base + 1, base + 2, base + 3}  # the PIP, DIP and tip of that finger
        assert set(moved.tolist()) == want, name


def test_bighand_errors(tmp_path):
    with pytest.raises(BankError, match="no such"):
        load_bighand(tmp_path / "missing.txt")
    (tmp_path / "bad.txt").write_text("a\t1\t2\n\n")
    with pytest.raises(BankError, match="no valid BigHand pose"):
        load_bighand(tmp_path / "bad.txt")


# --------------------------------------------------------------------------------------------
# CLI
# --------------------------------------------------------------------------------------------
def test_cli_build_and_stats(tmp_path, bighand_file, capsys):
    path, _ = bighand_file
    assert main(["poses", "build", "--source", "bighand", "--input", str(path),
                 "--out", str(tmp_path / "bh.npz")]) == 0  # fmt: skip
    stats = json.loads((tmp_path / "bh.json").read_text())
    assert stats["count"] == 6 and stats["parse"]["skipped"]["field_count"] == 2
    assert main(["poses", "build", "--n", "500", "--seed", "3", "--mode-weights", "fist=5",
                 "--out", str(tmp_path / "p.npz")]) == 0  # fmt: skip
    b = load_bank(tmp_path / "p.npz")
    assert len(b) == 500 and b.meta["mode_weights"] == {"fist": 5.0}
    np.save(tmp_path / "arr.npy", b.joints * 1000.0)
    assert main(["poses", "build", "--source", "array", "--input", str(tmp_path / "arr.npy"),
                 "--unit", "mm", "--out", str(tmp_path / "a.npz")]) == 0  # fmt: skip
    np.testing.assert_allclose(load_bank(tmp_path / "a.npz").joints, b.joints, atol=1e-6)
    capsys.readouterr()
    assert main(["poses", "stats", str(tmp_path / "a.npz")]) == 0
    assert json.loads(capsys.readouterr().out)["count"] == 500
    assert main(["poses", "build", "--source", "array", "--out", str(tmp_path / "x.npz")]) == 2
