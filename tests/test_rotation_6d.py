"""The continuous rotation of issue 11: 6D <-> R (Zhou et al., CVPR 2019), the 6D head, and a
rotation loss without wrap-around - checked against scipy and the paper's definitions."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy.spatial.transform import Rotation

from seqhand.geometry.rotations import (
    axis_angle_to_matrix,
    geodesic_angle,
    matrix_to_axis_angle,
    matrix_to_rotation_6d,
    rotation_6d_to_matrix,
)
from seqhand.losses import LossWeights, camera_loss
from seqhand.models import build_model, params_to_raw
from seqhand.models.seqhandnet import decode_raw


def gram_schmidt_reference(d6: np.ndarray) -> np.ndarray:
    """Zhou et al. 2019, Sec. 4.2 written out: b1 = N(a1), b2 = N(a2 - (b1.a2) b1), b3 = b1 x b2,
    R = [b1 b2 b3] (columns)."""
    out = []
    for a in d6.reshape(-1, 6):
        a1, a2 = a[:3], a[3:]
        b1 = a1 / np.linalg.norm(a1)
        b2 = a2 - b1.dot(a2) * b1
        b2 = b2 / np.linalg.norm(b2)
        out.append(np.stack([b1, b2, np.cross(b1, b2)], axis=1))
    return np.array(out)


def test_r_to_6d_to_r_is_exact():
    rots = Rotation.random(500, random_state=0)
    m = torch.from_numpy(rots.as_matrix())
    d6 = matrix_to_rotation_6d(m)
    np.testing.assert_array_equal(d6[:, :3].numpy(), rots.as_matrix()[:, :, 0])
    back = rotation_6d_to_matrix(d6)
    np.testing.assert_allclose(back.numpy(), rots.as_matrix(), atol=1e-14)


def test_gram_schmidt_of_any_6_numbers_matches_the_definition():
    rng = np.random.default_rng(1)
    d6 = rng.normal(size=(200, 6))
    got = rotation_6d_to_matrix(torch.from_numpy(d6)).numpy()
    np.testing.assert_allclose(got, gram_schmidt_reference(d6), atol=1e-12)
    np.testing.assert_allclose(np.linalg.det(got), 1.0, atol=1e-12)


def test_6d_has_no_jump_where_axis_angle_wraps():
    """Rotations about a fixed axis through angle pi: the axis-angle vector jumps by ~2 pi,
    the 6D numbers move by about the angle step."""
    axis = np.array([0.3, -0.5, 0.8]) / np.linalg.norm([0.3, -0.5, 0.8])
    angles = np.linspace(np.pi - 0.05, np.pi + 0.05, 41)
    rots = Rotation.from_rotvec(angles[:, None] * axis)
    rotvec = rots.as_rotvec()  # scipy: angle in [0, pi]
    assert np.linalg.norm(np.diff(rotvec, axis=0), axis=1).max() > 6.0  # the wrap-around
    d6 = matrix_to_rotation_6d(torch.from_numpy(rots.as_matrix())).numpy()
    step = np.linalg.norm(np.diff(d6, axis=0), axis=1)
    assert step.max() < 2 * (angles[1] - angles[0]) * np.sqrt(2)


def test_matrix_to_axis_angle_matches_scipy_and_has_finite_gradients():
    rots = Rotation.random(300, random_state=2)
    got = matrix_to_axis_angle(torch.from_numpy(rots.as_matrix())).numpy()
    np.testing.assert_allclose(Rotation.from_rotvec(got).as_matrix(), rots.as_matrix(), atol=1e-9)
    for m in (torch.eye(3), torch.diag(torch.tensor([1.0, -1.0, -1.0]))):  # angle 0 and pi
        d6 = matrix_to_rotation_6d(m.double()).requires_grad_(True)
        matrix_to_axis_angle(rotation_6d_to_matrix(d6)).sum().backward()
        assert torch.isfinite(d6.grad).all()


def _params_with_rot(rotvecs: np.ndarray) -> torch.Tensor:
    p = torch.zeros(len(rotvecs), 26, dtype=torch.float64)
    p[:, 0] = 300.0
    p[:, 1:3] = 32.0
    p[:, 3:6] = torch.from_numpy(rotvecs)
    return p


def test_rotation_loss_is_continuous_across_pi():
    """The same two rotations on either side of pi: the Frobenius and geodesic terms equal
    ||R_hat - R||_F^2 = 4 (1 - cos d) and d^2 (d the true angle between them, from scipy); the
    literal axis-angle comparison jumps."""
    axis = np.array([0.0, 0.6, 0.8])
    target = Rotation.from_rotvec((np.pi - 0.01) * axis)
    preds = Rotation.from_rotvec(np.array([np.pi - 0.02, np.pi + 0.02])[:, None] * axis)
    d = (preds * target.inv()).magnitude()  # 0.01 and 0.03 rad
    tgt = _params_with_rot(np.repeat(target.as_rotvec()[None], 2, 0))
    pred = _params_with_rot(preds.as_rotvec())
    rmat = torch.from_numpy(preds.as_matrix())
    hw = (64, 64)
    for kind, expected in (("frobenius", 4 * (1 - np.cos(d))), ("geodesic", d**2)):
        per = [camera_loss(pred[i : i + 1], tgt[i : i + 1], image_hw=hw, pred_rotmat=rmat[i],
                           rotation=kind).item() for i in range(2)]  # fmt: skip
        np.testing.assert_allclose(per, expected, rtol=1e-6, atol=1e-12)
    lit = [camera_loss(pred[i : i + 1], tgt[i : i + 1], image_hw=hw).item() for i in range(2)]
    assert lit[1] > 1000 * lit[0]  # the wrap-around: a 0.03 rad miss costs ~(2 pi)^2


def test_geodesic_angle_vs_scipy():
    a, b = Rotation.random(100, random_state=3), Rotation.random(100, random_state=4)
    got = geodesic_angle(torch.from_numpy(a.as_matrix()), torch.from_numpy(b.as_matrix()))
    np.testing.assert_allclose(got.numpy(), (a.inv() * b).magnitude(), atol=1e-7)


@pytest.mark.parametrize("rotation", ["6d", "axis_angle"])
def test_head_outputs_26_numbers_and_inverts(rotation):
    model = build_model("tiny", rotation=rotation, rot_offset=(0.1, -2.0, 0.4))
    assert model.raw_dim == (29 if rotation == "6d" else 26)
    params, rmat, _ = model.forward_full(torch.randn(1, 2, 3, 64, 64))
    assert params.shape == (1, 2, 26) and rmat.shape == (1, 2, 3, 3)
    np.testing.assert_allclose(axis_angle_to_matrix(params[..., 3:6]).detach().numpy(),
                               rmat.detach().numpy(), atol=1e-5)  # fmt: skip
    # a new network predicts rot_offset
    raw0 = torch.zeros(model.raw_dim)
    p0, _ = decode_raw(raw0, (64, 64), rotation=rotation, rot_offset=model.rot_offset)
    np.testing.assert_allclose(
        Rotation.from_rotvec(p0[3:6].numpy()).as_matrix(),
        Rotation.from_rotvec([0.1, -2.0, 0.4]).as_matrix(), atol=1e-6)  # fmt: skip
    # params -> raw -> params
    want = _params_with_rot(Rotation.random(5, random_state=5).as_rotvec()).float()
    raw = params_to_raw(want, (64, 64), rotation=rotation, rot_offset=model.rot_offset)
    got, _ = decode_raw(raw, (64, 64), rotation=rotation, rot_offset=model.rot_offset)
    np.testing.assert_allclose(Rotation.from_rotvec(got[:, 3:6].numpy()).as_matrix(),
                               Rotation.from_rotvec(want[:, 3:6].numpy()).as_matrix(), atol=1e-5)  # fmt: skip
    np.testing.assert_allclose(got[:, :3].numpy(), want[:, :3].numpy(), rtol=1e-5)


def test_loss_options_are_checked():
    with pytest.raises(ValueError, match="loss.reduction"):
        LossWeights(reduction="sum")
    with pytest.raises(ValueError, match="loss.rotation"):
        LossWeights(rotation="quaternion")
