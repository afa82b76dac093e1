"""``data.augment``: view jitter (a similarity of the image plane = a change of the weak-
perspective camera) and colour jitter of generated clips, with exact labels."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.ndimage
from scipy.spatial.transform import Rotation

from seqhand.data.generate import GenerateConfig, generate
from seqhand.data.seqhand_dataset import SeqHandIndexed, read_sequences
from seqhand.errors import SeqhandError
from seqhand.training.augment import (
    Augment,
    AugmentedSet,
    augment_from_config,
    color_jitter,
    warp_sample,
)
from seqhand.training.sampler import StepSampler


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    root = tmp_path_factory.mktemp("aug") / "ds"
    cfg = GenerateConfig(num_train=3, num_test=1, frames=3, image_size=48, shard_size=2,
                         bank_size=2000, theta_source="bank", image_format="png",
                         num_templates=2)  # fmt: skip
    generate(cfg, root, progress=False)
    return root


def _project(ann: dict) -> np.ndarray:
    """The convention's weak-perspective camera, x2d = s * Pi(R X) + t (conventions.py)."""
    r = Rotation.from_rotvec(np.asarray(ann["rot"], np.float64)).as_matrix()
    x = np.einsum("tij,tkj->tki", r, np.asarray(ann["joints3d"], np.float64))[..., :2]
    return np.asarray(ann["scale"])[:, None, None] * x + np.asarray(ann["trans"])[:, None]


def test_warped_camera_reprojects_the_warped_joints(dataset):
    s = read_sequences(dataset, "train")[0]
    np.testing.assert_allclose(_project(s["ann"]), s["ann"]["joints2d"], atol=1e-3)
    w = warp_sample(s, np.radians(40.0), 1.2, (3.0, -2.0))
    np.testing.assert_allclose(_project(w["ann"]), w["ann"]["joints2d"], atol=1e-3)
    # theta, beta and the hand-frame joints are untouched; the roll is about the optical axis
    for k in ("theta_pca", "betas", "joints3d"):
        np.testing.assert_array_equal(w["ann"][k], s["ann"][k])
    rel = Rotation.from_rotvec(w["ann"]["rot"]) * Rotation.from_rotvec(s["ann"]["rot"]).inv()
    np.testing.assert_allclose(rel.as_rotvec(), [[0, 0, np.radians(40.0)]] * 3, atol=1e-5)


def test_image_moves_with_the_labels():
    """A single bright pixel, with its 'joint' on it: after the warp the brightest pixel is
    where the joint went, and the image equals scipy's affine_transform (integer = pixel
    centre) in the interior."""
    size, p = 41, np.array([28.0, 12.0])  # x, y
    frames = np.zeros((1, size, size, 3), np.uint8)
    frames[0, int(p[1]) - 1 : int(p[1]) + 2, int(p[0]) - 1 : int(p[0]) + 2] = 255
    ann = {"joints2d": np.tile(p, (1, 21, 1)), "in_frame": np.ones((1, 21), bool),
           "trans": p[None], "scale": np.ones(1), "rot": np.zeros((1, 3))}  # fmt: skip
    phi, zoom, shift = np.radians(70.0), 0.9, np.array([-3.0, 4.0])
    w = warp_sample({"frames": frames, "ann": ann}, phi, zoom, shift)
    q = w["ann"]["joints2d"][0, 0]
    img = w["frames"][0, ..., 0].astype(float)
    yx = np.unravel_index(np.argmax(img), img.shape)
    com = scipy.ndimage.center_of_mass(img)
    assert abs(com[1] - q[0]) < 0.5 and abs(com[0] - q[1]) < 0.5, (com, q, yx)
    # reference: out[y, x] = in[M^-1 ((x, y) - c - d) / k + c] in (row, col) order
    c = (size - 1) / 2.0
    a = np.array([[np.cos(phi), -np.sin(phi)], [np.sin(phi), np.cos(phi)]])
    inv_xy = a.T / zoom
    inv_rc = inv_xy[::-1, ::-1]  # (row, col) = (y, x)
    offset = np.array([c, c]) - inv_rc @ (np.array([c, c]) + shift[::-1])
    ref = scipy.ndimage.affine_transform(frames[0, ..., 0].astype(float), inv_rc, offset,
                                         order=1, mode="nearest")  # fmt: skip
    np.testing.assert_allclose(img[5:-5, 5:-5], ref[5:-5, 5:-5], atol=1.0)


def test_joints_that_leave_the_frame_lose_in_frame(dataset):
    s = read_sequences(dataset, "train")[0]
    w = warp_sample(s, 0.0, 1.0, (40.0, 0.0))  # shifted right by most of the 48 px image
    j = w["ann"]["joints2d"]
    assert not w["ann"]["in_frame"][j[..., 0] > 47.5].any()
    assert (w["ann"]["in_frame"] == (s["ann"]["in_frame"] & (j[..., 0] <= 47.5))).all()


def test_color_jitter_changes_pixels_not_labels(dataset):
    s = read_sequences(dataset, "train")[0]
    c = color_jitter(s, np.random.default_rng(0), 1.0)
    assert c["frames"].dtype == np.uint8 and c["frames"].shape == s["frames"].shape
    assert np.abs(c["frames"].astype(int) - s["frames"]).mean() > 1.0
    assert c["ann"] is s["ann"]
    same = color_jitter(s, np.random.default_rng(0), 0.0)
    assert np.abs(same["frames"].astype(int) - s["frames"]).max() <= 1  # rounding only


def test_augmented_set_is_deterministic_per_index_and_new_each_epoch(dataset):
    base = SeqHandIndexed(dataset, "train")
    aug = AugmentedSet(base, Augment(roll_deg=30, zoom=0.1, shift=0.05, color=1.0), None, seed=7)
    n = len(aug)
    a, b, c = aug[1], aug[1], aug[1 + n]
    np.testing.assert_array_equal(a["frames"], b["frames"])
    np.testing.assert_array_equal(a["ann"]["rot"], b["ann"]["rot"])
    assert not np.array_equal(a["ann"]["rot"], c["ann"]["rot"])  # epoch 1 draws a new jitter
    np.testing.assert_array_equal(c["ann"]["theta_pca"], base[1]["ann"]["theta_pca"])
    sampler = StepSampler(n, 2, seed=0, max_steps=6, epoch_offsets=True)
    idx = [i for k in range(6) for i in sampler.indices_for_step(k)]
    assert sorted(i % n for i in idx[:n]) == list(range(n))  # epoch 0 is a permutation
    assert [i // n for i in idx] == [p // n for p in range(12)]  # epoch e adds e * n
    resumed = StepSampler(n, 2, seed=0, start_step=3, max_steps=6, epoch_offsets=True)
    assert list(resumed) == idx[6:]


def test_augment_config_errors():
    assert not augment_from_config(None).active
    assert augment_from_config({"roll_deg": 15}).roll_deg == 15.0
    with pytest.raises(SeqhandError, match="unknown"):
        augment_from_config({"rotate": 15})
    with pytest.raises(SeqhandError, match=">= 0"):
        augment_from_config({"zoom": -0.1})


def test_training_with_augmentation_runs(dataset, tmp_path):
    from seqhand.config import load_config
    from seqhand.training.run import train

    run_cfg = load_config("tiny", [f"data.root={dataset}", "model.image_size=32",
                                   "data.clip_frames=2", "trainer.max_steps=2",
                                   "trainer.val_every_n_steps=2", "data.batch_size=2",
                                   "data.num_workers=0", "data.val_sequences=1",
                                   "data.augment={roll_deg: 20, zoom: 0.1, color: 0.5}"])  # fmt: skip
    assert run_cfg["data"]["augment"] == {"roll_deg": 20, "zoom": 0.1, "color": 0.5}
    summary = train(run_cfg, tmp_path / "run", progress=False)
    assert summary["steps"] == 2 and np.isfinite(summary["metrics"]["val/epe3d_mm"])
