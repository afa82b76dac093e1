"""Real-benchmark loaders on fixture files written in the published formats."""

from __future__ import annotations

import json
import pickle

import numpy as np
import pytest
import scipy.io
from scipy.spatial.transform import Rotation

from data_fixtures import (
    PALETTE,
    write_dexter_object,
    write_egodexter,
    write_freihand,
    write_rhd,
    write_stb,
)
from seqhand.data import (
    RHD,
    STB,
    DatasetFormatError,
    DatasetNotFoundError,
    DexterObject,
    EgoDexter,
    FreiHAND,
    collate_samples,
    palm_from_joints,
    palm_from_vertices,
    resolve_root,
    unmirror_points,
    wrist_from_palm,
)
from seqhand.data.stb import SK_ROTVEC, SK_TRANSLATION_MM, sk_color_to_depth, sk_depth_to_color
from seqhand.data.types import mirror_points3d, project


def nearest_palette(rgb) -> int:
    return int(np.argmin(((PALETTE.astype(int) - np.asarray(rgb, int)) ** 2).sum(1)))


def check_dots(sample, exact: bool = True) -> None:
    """Every valid output 2D joint lies on the dot painted for that project joint."""
    h, w = sample.image.shape[:2]
    for j in np.flatnonzero(sample.joint_valid):
        u, v = np.round(sample.joints2d[j]).astype(int)
        assert 0 <= u < w and 0 <= v < h
        px = sample.image[v, u]
        if exact:
            assert tuple(px) == tuple(PALETTE[j]), f"joint {j}: pixel {px}, expected {PALETTE[j]}"
        else:
            assert nearest_palette(px) == j, f"joint {j}: pixel {px}"


def check_geometry(sample, truth_xyz, truth_valid, mirrored: bool) -> None:
    v = truth_valid
    np.testing.assert_array_equal(sample.joint_valid, v)
    expect = mirror_points3d(truth_xyz) if mirrored else truth_xyz
    np.testing.assert_allclose(sample.joints3d[v], expect[v], atol=1e-9)
    # the returned K projects the returned 3D joints onto the returned 2D joints (RHD: float32)
    np.testing.assert_allclose(project(sample.joints3d[v], sample.K), sample.joints2d[v], atol=1e-4)
    assert sample.mirrored is mirrored
    # un-mirroring gives back the recorded hand
    np.testing.assert_allclose(
        unmirror_points(sample.joints3d, mirrored)[v], truth_xyz[v], atol=1e-9
    )


# --------------------------------------------------------------------------------------------
# FreiHAND
# --------------------------------------------------------------------------------------------
def test_freihand_training_all_versions(tmp_path):
    truth = write_freihand(tmp_path)["training"]
    ds = FreiHAND(tmp_path, "training", load_verts=True)
    assert len(ds) == 3 * 4
    for idx in range(len(ds)):
        s = ds[idx]
        version, i = divmod(idx, 3)
        assert s.image.shape == (224, 224, 3)
        # background level tells which version file was read: gs, hom, sample, auto
        assert abs(int(s.image[2, 2, 0]) - 40 * (version + 1)) <= 3
        check_geometry(s, truth.joints3d[i], truth.valid[i], mirrored=False)
        check_dots(s, exact=False)
        np.testing.assert_allclose(s.K, truth.extra["K"][i])
        np.testing.assert_allclose(s.verts3d, truth.extra["verts"][i])
        m = np.asarray(truth.extra["mano"][i][0])
        np.testing.assert_allclose(np.concatenate([s.mano.global_orient, s.mano.hand_pose]), m[:48])
        np.testing.assert_allclose(s.mano.betas, m[48:58])
        np.testing.assert_allclose(s.mano.extras["uv_root"], m[58:60])
        assert s.mano.pose_origin == "mean"
        assert s.metric_scale == pytest.approx(truth.extra["scale"][i])
        assert s.mask.dtype == bool and s.mask[60, 50] and not s.mask[200, 200]
        assert s.root_kind == "wrist" and s.sequence_id is None


def test_freihand_version_selection_and_evaluation(tmp_path):
    write_freihand(tmp_path)
    hom = FreiHAND(tmp_path, "training", versions="hom")
    assert len(hom) == 3
    assert hom.image_file_index(2) == (2, 2 + 3)
    two = FreiHAND(tmp_path, "training", versions=("auto", "gs"))
    assert two.image_file_index(0) == (0, 9) and two.image_file_index(3) == (0, 0)
    ev = FreiHAND(tmp_path, "evaluation")
    assert ev.sequences() == [("freihand_00000000", [0]), ("freihand_00000001", [1])]
    assert len(ev) == 2 and ev[1].joints3d is not None and ev[1].mask is None
    with pytest.raises(ValueError, match="versions"):
        FreiHAND(tmp_path, "training", versions="blue")
    with pytest.raises(ValueError, match="gs"):
        FreiHAND(tmp_path, "evaluation", versions="hom")


def test_freihand_evaluation_without_labels(tmp_path):
    write_freihand(tmp_path)
    (tmp_path / "evaluation_xyz.json").unlink()
    s = FreiHAND(tmp_path, "evaluation")[0]
    assert s.joints3d is None and not s.joint_valid.any()


def test_freihand_malformed(tmp_path):
    write_freihand(tmp_path)
    k = tmp_path / "training_K.json"
    k.write_text("[[[1, 0, 0],\n  [0, 1, 0],\n  [0, 0, 1]],\n  [[1, 2]\n")
    with pytest.raises(DatasetFormatError, match=r"training_K\.json:5"):
        FreiHAND(tmp_path, "training")
    k.write_text(json.dumps([np.eye(3).tolist(), [[1, 2], [3, 4]]]))
    with pytest.raises(DatasetFormatError, match=r"training_K\.json: entry 1"):
        FreiHAND(tmp_path, "training")
    k.write_text(json.dumps([np.eye(3).tolist()] * 2))  # 2 K's but 3 joint sets
    with pytest.raises(DatasetFormatError, match=r"training_xyz\.json: expected 2 entries"):
        FreiHAND(tmp_path, "training")


def test_freihand_missing_image_names_file(tmp_path):
    write_freihand(tmp_path)
    (tmp_path / "training" / "rgb" / "00000004.jpg").unlink()  # version hom of sample 1
    ds = FreiHAND(tmp_path, "training")
    with pytest.raises(DatasetNotFoundError, match="00000004.jpg"):
        ds[4]


# --------------------------------------------------------------------------------------------
# STB
# --------------------------------------------------------------------------------------------
@pytest.mark.parametrize("camera", ["BB", "SK"])
def test_stb(tmp_path, camera):
    truth = write_stb(tmp_path)[camera]
    ds = STB(tmp_path, "all", camera=camera, sequences=("B1Counting", "B1Random", "B2Counting"))
    assert len(ds) == 9 and ds.root_kind == "palm"
    assert [s for s, _ in ds.sequences()] == ["B1Counting", "B1Random", "B2Counting"]
    for _seq, idx in ds.sequences():
        assert [ds[i].frame_index for i in idx] == [0, 1, 2]
    for i in range(len(ds)):
        s = ds[i]
        check_geometry(s, truth.joints3d[i], truth.valid[i], mirrored=True)
        check_dots(s)
        assert s.root_kind == "palm"


def test_stb_views(tmp_path):
    """BB-both = hand3d's STB evaluation set: each BB left frame and its right stereo image, whose
    labels are the left's minus the 120.054 mm baseline in x (hand3d data/stb/create_db.m)."""
    truth = write_stb(tmp_path)
    left = STB(tmp_path, "test")
    assert left.view == "BB-left" and len(left) == 6
    both = STB(tmp_path, "test", view="BB-both")
    assert len(both) == 12
    names = [s for s, _ in both.sequences()]
    assert names == ["B1Counting", "B1Counting-BB_right", "B1Random", "B1Random-BB_right"]
    by_seq = dict(both.sequences())
    for k, seq in enumerate(("B1Counting", "B1Random")):
        for f in range(3):
            i_l, i_r = by_seq[seq][f], by_seq[f"{seq}-BB_right"][f]
            check_geometry(both[i_l], truth["BB"].joints3d[3 * k + f], np.ones(21, bool), True)
            s = both[i_r]
            check_geometry(s, truth["BB_right"].joints3d[3 * k + f], np.ones(21, bool), True)
            assert s.image_path.endswith(f"{seq}/BB_right_{f}.png") and s.frame_index == f
    sk = STB(tmp_path, "test", view="SK")
    assert len(sk) == 6 and sk[0].image_path.endswith("SK_color_0.png")
    with pytest.raises(ValueError, match="view must be one of"):
        STB(tmp_path, "test", view="BB-right")


def test_stb_split_and_unmirrored(tmp_path):
    truth = write_stb(tmp_path)["BB"]
    test = STB(tmp_path, "test")
    assert [s for s, _ in test.sequences()] == ["B1Counting", "B1Random"]
    raw = STB(tmp_path, "test", mirror=False)
    check_geometry(raw[0], truth.joints3d[0], truth.valid[0], mirrored=False)
    check_dots(raw[0])
    with pytest.raises(DatasetNotFoundError, match="B2Random_BB.mat"):
        STB(tmp_path, "train")  # the fixture has only B2Counting of the training sequences


def test_stb_sk_transform_matches_readme_convention():
    """X_depth = R X_color + t with R = Rodrigues(rotation vector) (STB readme)."""
    rng = np.random.default_rng(0)
    x = rng.normal(size=(5, 3)) * 100
    r = Rotation.from_rotvec(SK_ROTVEC).as_matrix()
    np.testing.assert_allclose(sk_color_to_depth(x), x @ r.T + SK_TRANSLATION_MM, atol=1e-12)
    np.testing.assert_allclose(sk_depth_to_color(sk_color_to_depth(x)), x, atol=1e-12)


def test_stb_malformed(tmp_path):
    write_stb(tmp_path, sequences=("B1Counting",))
    lab = tmp_path / "labels" / "B1Counting_BB.mat"
    scipy.io.savemat(lab, {"handPara2": np.zeros((3, 21, 2))})
    with pytest.raises(
        DatasetFormatError, match=r"B1Counting_BB\.mat: expected a variable 'handPara'"
    ):
        STB(tmp_path, sequences=("B1Counting",))
    scipy.io.savemat(lab, {"handPara": np.zeros((3, 20, 2))})
    with pytest.raises(DatasetFormatError, match=r"3 x 21 x F"):
        STB(tmp_path, sequences=("B1Counting",))
    lab.write_bytes(b"not a mat file at all")
    with pytest.raises(DatasetFormatError, match="B1Counting_BB.mat"):
        STB(tmp_path, sequences=("B1Counting",))


def test_palm_helpers():
    rng = np.random.default_rng(1)
    j = rng.normal(size=(4, 21, 3))
    np.testing.assert_allclose(palm_from_joints(j), 0.5 * (j[:, 0] + j[:, 13]))
    np.testing.assert_allclose(palm_from_joints(j, mcp="middle"), 0.5 * (j[:, 0] + j[:, 9]))
    stb_like = j.copy()
    stb_like[:, 0] = palm_from_joints(j)
    np.testing.assert_allclose(wrist_from_palm(stb_like), j, atol=1e-12)
    v = rng.normal(size=(2, 778, 3))
    np.testing.assert_allclose(palm_from_vertices(v), 0.5 * (v[:, 95] + v[:, 22]))
    with pytest.raises(ValueError):
        palm_from_joints(j[:, :20])


# --------------------------------------------------------------------------------------------
# EgoDexter / Dexter+Object
# --------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "cls, writer, seqs",
    [
        (EgoDexter, write_egodexter, ("Desk", "Kitchen")),
        (DexterObject, write_dexter_object, ("Grasp1", "Rotate")),
    ],
)
def test_fingertip_sets(tmp_path, cls, writer, seqs):
    truth = writer(tmp_path)
    ds = cls(tmp_path, sequences=seqs)
    assert len(ds) == 6 and ds.sequential
    assert [(s, idx) for s, idx in ds.sequences()] == [(seqs[0], [0, 1, 2]), (seqs[1], [3, 4, 5])]
    for i in range(len(ds)):
        s = ds[i]
        assert s.joint_valid.sum() == (3 if i % 3 == 1 else 5)
        assert set(np.flatnonzero(s.joint_valid)) <= {4, 8, 12, 16, 20}
        check_geometry(s, truth.joints3d[i], truth.valid[i], mirrored=True)
        check_dots(s)
        assert s.sequence_id == seqs[i // 3] and s.frame_index == i % 3


@pytest.mark.parametrize(
    "cls, writer, rel",
    [
        (EgoDexter, write_egodexter, "data/Desk/annotation.txt_3D.txt"),
        (DexterObject, write_dexter_object, "data/Grasp1/annotations/Grasp13D.txt"),
    ],
)
def test_fingertip_malformed(tmp_path, cls, writer, rel):
    writer(tmp_path)
    seq = rel.split("/")[1]
    ann = tmp_path / rel
    lines = ann.read_text().splitlines()
    lines[1] = "1, 2, 3; 4, 5; 1, 1, 1; 2, 2, 2; 3, 3, 3;"
    ann.write_text("\n".join(lines) + "\n")
    with pytest.raises(DatasetFormatError, match=rf"{ann.name}:2: field 2"):
        cls(tmp_path, sequences=(seq,))
    lines[1] = "1, 2, 3; 4, 5, x; 1, 1, 1; 2, 2, 2; 3, 3, 3;"
    ann.write_text("\n".join(lines) + "\n")
    with pytest.raises(DatasetFormatError, match=rf"{ann.name}:2: field 2: not a number"):
        cls(tmp_path, sequences=(seq,))
    lines[1] = "1, 2, 3; 4, 5, 6;"
    ann.write_text("\n".join(lines) + "\n")
    with pytest.raises(DatasetFormatError, match=rf"{ann.name}:2: expected 5"):
        cls(tmp_path, sequences=(seq,))
    ann.write_text("\n".join(lines[:1] + lines[2:]) + "\n")  # one line short of the frames
    with pytest.raises(DatasetFormatError, match="one annotation line per colour frame"):
        cls(tmp_path, sequences=(seq,))


def test_fingertip_right_hand_option(tmp_path):
    truth = write_egodexter(tmp_path)
    s = EgoDexter(tmp_path, sequences=("Desk",), hand_side="right")[0]
    check_geometry(s, truth.joints3d[0], truth.valid[0], mirrored=False)
    check_dots(s)


# --------------------------------------------------------------------------------------------
# RHD
# --------------------------------------------------------------------------------------------
def test_rhd(tmp_path):
    truth = write_rhd(tmp_path)
    ds = RHD(tmp_path, "training")
    assert len(ds) == 3
    for i in range(len(ds)):
        s = ds[i]
        left = truth.extra["sides"][i] == "left"
        assert ds.hand_side(i) == truth.extra["sides"][i]
        check_geometry(s, truth.joints3d[i], truth.valid[i], mirrored=left)
        check_dots(s)
        assert s.joint_visible.sum() == 18
        labels = truth.extra["labels"][i]
        expect = (labels >= 2) & (labels <= 17) if left else (labels >= 18) & (labels <= 33)
        np.testing.assert_array_equal(s.mask, expect[:, ::-1] if left else expect)


def test_rhd_malformed_and_unsafe(tmp_path):
    write_rhd(tmp_path, sides=("right",))
    path = tmp_path / "training" / "anno_training.pickle"
    with open(path, "wb") as f:
        pickle.dump({0: {"uv_vis": np.zeros((42, 3)), "K": np.eye(3)}}, f, protocol=2)
    with pytest.raises(
        DatasetFormatError, match=r"anno_training\.pickle: sample 0: missing key 'xyz'"
    ):
        RHD(tmp_path)
    with open(path, "wb") as f:
        pickle.dump({0: {"uv_vis": np.zeros((21, 3)), "xyz": np.zeros((42, 3)), "K": np.eye(3)}}, f)
    with pytest.raises(DatasetFormatError, match=r"sample 0: 'uv_vis' must be \(42, 3\)"):
        RHD(tmp_path)

    class Evil:
        def __reduce__(self):
            return (print, ("pwned",))

    with open(path, "wb") as f:
        pickle.dump({0: Evil()}, f)
    with pytest.raises(DatasetFormatError, match="refused global 'builtins.print'"):
        RHD(tmp_path)


# --------------------------------------------------------------------------------------------
# roots and batching
# --------------------------------------------------------------------------------------------
def test_roots_from_argument_and_environment(tmp_path, monkeypatch):
    write_egodexter(tmp_path / "EgoDexter", sequences=("Desk",), n_frames=2)
    monkeypatch.setenv("SEQHAND_DATA", str(tmp_path))
    assert resolve_root("egodexter") == tmp_path / "EgoDexter"
    assert len(EgoDexter(sequences=("Desk",))) == 2
    with pytest.raises(DatasetNotFoundError, match="DexterObject"):
        resolve_root("dexter_object")
    monkeypatch.delenv("SEQHAND_DATA")
    with pytest.raises(DatasetNotFoundError, match="SEQHAND_DATA is not set"):
        resolve_root("stb")
    with pytest.raises(DatasetNotFoundError, match="does not exist"):
        resolve_root("stb", tmp_path / "nope")


def test_collate_and_dataloader(tmp_path):
    import torch

    write_stb(tmp_path, sequences=("B1Counting",), n_frames=2)
    ds = STB(tmp_path, sequences=("B1Counting",))
    batch = collate_samples([ds[0], ds[1]])
    assert batch["image"].shape == (2, 480, 640, 3) and batch["image"].dtype == torch.uint8
    assert batch["joints3d"].shape == (2, 21, 3) and batch["mask"] is None
    assert batch["sequence_id"] == ["B1Counting", "B1Counting"]
    loader = torch.utils.data.DataLoader(ds, batch_size=2, collate_fn=collate_samples)
    assert next(iter(loader))["K"].shape == (2, 3, 3)
