"""Pose flows (Eq. 5-7) on the built-in prior bank, and their camera / shape / template draws."""

from __future__ import annotations

import hashlib

import numpy as np
import pytest
from scipy.spatial.transform import Rotation

from seqhand.cli import main
from seqhand.synth.bank import bank_from_prior, load_bank
from seqhand.synth.flow import (
    FlowConfig,
    FlowError,
    flow_randoms,
    flow_statistics,
    generate_flow,
    generate_flows,
    geodesic_flow,
    linear_flow,
)
from seqhand.synth.nn import build_nn


@pytest.fixture(scope="module")
def bank():
    return bank_from_prior(None, 20_000, seed=3)


@pytest.fixture(scope="module")
def nn(bank):
    return build_nn(bank.flat, "pca-tree")


SEQ = FlowConfig(views="seqhand", ego_fraction=0.5)  # the "seqhand" view mode


@pytest.fixture(scope="module")
def flows(bank, nn):
    return generate_flows(bank, nn, seed=5, start=0, count=200, config=SEQ)


def naive_flow(
    points: np.ndarray, initial: int, final: int, n: int, alpha: float, literal: bool = True
) -> list[int]:
    """Eq. 5-7 written out: float64 update, brute-force argmin, ties to the lowest index.
    Not ``literal``: a step landing on P_{k-1} or P_{k-2} takes the nearest pose other than
    those two, and a flow at P_final rests."""
    p = points.astype(np.float64)
    out = [initial]
    for _ in range(1, n):
        if not literal and out[-1] == final:
            out.append(final)
            continue
        cur = p[out[-1]]
        upd = cur - (alpha / n) * (cur - p[final])
        d = ((p - upd) ** 2).sum(1)
        best = int(np.flatnonzero(d == d.min())[0])
        if not literal and best in out[-2:]:
            d[out[-2:]] = np.inf
            best = int(np.flatnonzero(d == d.min())[0])
        out.append(best)
    return out


def _digest(bank) -> str:
    h = hashlib.sha256(bank.joints.tobytes())
    h.update(bank.poses.tobytes())
    return h.hexdigest()


def test_flows_follow_eq_5_to_7(bank, nn, flows):
    ids, _ = flow_randoms(5, np.arange(30), len(bank))
    literal = generate_flows(bank, nn, seed=5, start=0, count=30,
                             config=FlowConfig(literal=True))  # fmt: skip
    for i in range(30):
        want = naive_flow(bank.flat, ids[i, 0], ids[i, 1], 10, FlowConfig().alpha)
        np.testing.assert_array_equal(literal.bank_indices[i], want)
        want = naive_flow(bank.flat, ids[i, 0], ids[i, 1], 10, FlowConfig().alpha, literal=False)
        np.testing.assert_array_equal(flows.bank_indices[i], want)


def test_flows_do_not_freeze_or_swing_back(bank, nn, flows):
    """Literal Eq. 7 freezes most flows on a sparse bank; the default rule keeps them moving:
    a pose repeats only once the flow has reached P_final, and never returns to P_{k-2}."""
    ids, _ = flow_randoms(5, np.arange(200), len(bank))
    bi = flows.bank_indices
    repeat = bi[:, 1:] == bi[:, :-1]
    assert np.all(bi[:, :-1][repeat] == np.repeat(ids[:, 1:2], 9, 1)[repeat])
    assert not np.any((bi[:, 2:] == bi[:, :-2]) & (bi[:, 2:] != ids[:, 1:2]))
    literal = generate_flows(bank, nn, seed=5, start=0, count=200,
                             config=FlowConfig(literal=True)).bank_indices  # fmt: skip
    lit_stats = flow_statistics(bank.flat, literal, ids[:, 1])
    stats = flow_statistics(bank.flat, bi, ids[:, 1])
    assert lit_stats["repeat_fraction"] > 0.4  # the failure the rule fixes (measured 0.6-0.7)
    assert stats["repeat_fraction"] < 0.25
    assert stats["dist_to_final_rel"][-1] < 0.5 * lit_stats["dist_to_final_rel"][-1]


def test_every_frame_is_a_bank_pose_and_the_first_is_p_initial(bank, flows):
    ids, _ = flow_randoms(5, flows.index, len(bank))
    np.testing.assert_array_equal(flows.bank_indices[:, 0], ids[:, 0])
    joints = flows.joints(bank)
    assert joints.shape == (200, 10, 21, 3) and joints.dtype == np.float32
    np.testing.assert_array_equal(joints, bank.joints[flows.bank_indices])
    f = flows.flow(7, bank)
    np.testing.assert_array_equal(f.joints, bank.joints[f.bank_indices])


def test_distance_to_p_final_shrinks_on_average(bank, flows):
    ids, _ = flow_randoms(5, flows.index, len(bank))
    st = flow_statistics(bank.flat, flows.bank_indices, ids[:, 1])
    d = np.array(st["dist_to_final_mm"])
    assert np.all(np.diff(d) <= 1e-9)  # the mean never grows (a step snaps to a nearer pose)
    assert d[-1] < 0.8 * d[0]
    assert st["mean_step_mm"] > 0.5


def test_same_seed_same_flow_and_index_independence(bank, nn, flows):
    again = generate_flows(bank, nn, seed=5, start=0, count=200, config=SEQ)
    for name in ("bank_indices", "cam_rot", "cam_scale", "cam_trans", "betas", "template", "ego"):
        assert getattr(again, name).tobytes() == getattr(flows, name).tobytes(), name
    # Flow 17 alone, or inside another batch, is the same flow.
    alone = generate_flow(bank, nn, seed=5, index=17, config=SEQ)
    part = generate_flows(bank, nn, seed=5, start=10, count=20, config=SEQ)
    np.testing.assert_array_equal(alone.bank_indices, flows.bank_indices[17])
    np.testing.assert_array_equal(part.bank_indices[7], flows.bank_indices[17])
    np.testing.assert_array_equal(alone.cam_rot, flows.cam_rot[17])
    assert alone.index == 17 and alone.seed == 5
    other = generate_flows(bank, nn, seed=6, start=0, count=200, config=SEQ)
    assert not np.array_equal(other.bank_indices, flows.bank_indices)


def test_exact_methods_give_identical_flows(bank, flows):
    bf = build_nn(bank.flat, "bruteforce")
    np.testing.assert_array_equal(
        generate_flows(bank, bf, seed=5, start=0, count=40, config=SEQ).bank_indices,
        flows.bank_indices[:40],
    )


def test_bank_is_never_written(nn):
    bank = bank_from_prior(None, 20_000, seed=3)
    before = _digest(bank)
    generate_flows(bank, nn, seed=1, start=0, count=100)
    generate_flow(bank, nn, seed=2, index=3)
    assert _digest(bank) == before
    assert not bank.joints.flags.writeable and not bank.flat.flags.writeable


def test_shape_template_and_views(flows):
    assert np.all(np.abs(flows.betas) <= 2.0) and flows.betas.shape == (200, 10)
    assert np.abs(flows.betas).max() > 1.5  # spread over the range
    assert set(np.unique(flows.template)) <= set(range(FlowConfig().num_templates))
    assert 0.3 < flows.ego.mean() < 0.7


def test_camera_flows(flows):
    cfg = SEQ
    n = cfg.n_frames
    rot = Rotation.from_rotvec(flows.cam_rot.reshape(-1, 3)).as_matrix().reshape(200, n, 3, 3)
    # Egocentric: the back of the hand (+z) faces the camera (-z), fingers (-y) up and away.
    back = rot[..., :, 2]  # R applied to +z
    fingers = -rot[..., :, 1]  # R applied to -y
    ego = flows.ego
    assert np.all(back[ego][..., 2] < 0)
    assert np.all(fingers[ego][..., 1] < 0) and np.all(fingers[ego][..., 2] > 0)
    third = back[~ego][:, 0, 2]
    assert (third > 0.3).any() and (third < -0.3).any()  # palm and back views both occur
    # Scale and translation follow Eq. 6 exactly (no snapping), toward an end value that is
    # itself in range.
    step = cfg.alpha / n
    for x in (flows.cam_scale, flows.cam_trans):
        end = x[:, 0] + (x[:, 1] - x[:, 0]) / step
        np.testing.assert_allclose(x[:, 1:], x[:, :-1] - step * (x[:, :-1] - end[:, None]),
                                   rtol=1e-9, atol=1e-9)  # fmt: skip
    lo, hi = (f * cfg.image_size / cfg.hand_extent for f in cfg.fill)
    s = flows.cam_scale
    end = s[:, 0] + (s[:, 1] - s[:, 0]) / step
    assert np.all((s >= lo - 1e-6) & (s <= hi + 1e-6))
    assert np.all((end >= lo - 1e-6) & (end <= hi + 1e-6))


def test_hands_stay_in_the_crop(bank, flows):
    j = flows.joints(bank).astype(np.float64)  # (F, T, 21, 3)
    rot = Rotation.from_rotvec(flows.cam_rot.reshape(-1, 3)).as_matrix().reshape(200, 10, 3, 3)
    x2d = np.einsum("ftij,ftkj->ftki", rot, j)[..., :2] * flows.cam_scale[..., None, None]
    x2d += flows.cam_trans[:, :, None, :]
    inside = np.all((x2d >= 0) & (x2d < 224), axis=-1)
    assert inside.mean() > 0.97
    extent = x2d.max(2) - x2d.min(2)
    assert np.median(extent.max(-1)) > 0.35 * 224  # the hand fills a good part of the frame


def test_geodesic_and_linear_updates():
    a = Rotation.from_rotvec([[0.0, 0.0, 0.0], [0.3, -0.2, 1.0]])
    b = Rotation.from_rotvec([[0.0, 0.0, 2.0], [-1.0, 0.5, 0.2]])
    flow = geodesic_flow(a, b, 10, 2.0)
    np.testing.assert_allclose(flow[:, 0], a.as_rotvec())
    z = flow[0, :, 2]  # about a fixed axis: the angle follows Eq. 6 exactly
    np.testing.assert_allclose(z[1:], z[:-1] - 0.2 * (z[:-1] - 2.0), atol=1e-12)
    r = Rotation.from_rotvec(flow[1])
    gap = (r.inv() * b[1]).magnitude()
    np.testing.assert_allclose(gap[1:], 0.8 * gap[:-1], atol=1e-9)  # 20 % of the geodesic gap
    lin = linear_flow(np.array([[0.0, 10.0]]), np.array([[10.0, 0.0]]), 4, 2.0)
    np.testing.assert_allclose(lin[0, :, 0], [0.0, 5.0, 7.5, 8.75])


def test_config_errors(bank):
    with pytest.raises(FlowError, match="alpha"):
        FlowConfig(alpha=0.0)
    with pytest.raises(FlowError, match="alpha"):
        FlowConfig(n_frames=2, alpha=4.0)  # alpha / n >= 2: Eq. 6 would diverge
    FlowConfig(n_frames=2, alpha=3.0)  # overshoots and comes back: allowed
    with pytest.raises(FlowError, match="n_frames"):
        FlowConfig(n_frames=0)
    small = build_nn(bank.flat[:100], "bruteforce")
    with pytest.raises(FlowError, match="points but the bank has"):
        generate_flows(bank, small, seed=0, count=1)


def test_single_frame_flows(bank, nn):
    f = generate_flows(bank, nn, seed=1, count=5, config=FlowConfig(n_frames=1, alpha=1.0))
    assert f.bank_indices.shape == (5, 1) and f.cam_rot.shape == (5, 1, 3)


def test_cli_flows(tmp_path, bank):
    bank.save(tmp_path / "b.npz")
    assert main(["poses", "flows", str(tmp_path / "b.npz"), "--count", "6", "--seed", "2",
                 "--out", str(tmp_path / "f.npz")]) == 0  # fmt: skip
    with np.load(tmp_path / "f.npz") as z:
        assert z["bank_indices"].shape == (6, 10) and z["joints"].shape == (6, 10, 21, 3)
        np.testing.assert_array_equal(z["joints"], load_bank(tmp_path / "b.npz").joints[
            z["bank_indices"]])  # fmt: skip


def test_two_pose_bank():
    """The smallest bank: the flow moves to the only other pose and rests there (Eq. 7 taken
    literally never leaves: a 0.3 step from P_0 is still nearer P_0)."""
    from seqhand.synth.flow import pose_flow_indices

    pts = np.random.default_rng(0).normal(size=(2, 63)).astype(np.float32)
    nn = build_nn(pts, "pca-tree")
    one, zero = np.array([1]), np.array([0])
    assert pose_flow_indices(pts, nn, zero, one, 10, 3.0).tolist() == [[0] + [1] * 9]
    literal = pose_flow_indices(pts, nn, zero, one, 10, 3.0, literal=True)
    assert literal.tolist() == [[0] * 10]


# --------------------------------------------------------------------------------------------
# The authors' view mode (vanyoleyang/seqhand gen_sequential_synth_data.py, get_ss_tu_tv)
# --------------------------------------------------------------------------------------------
# MANO_RIGHT's rest joints (zero pose and shape, MANO's 16-joint order: wrist, index1-3,
# middle1-3, pinky1-3, ring1-3, thumb1-3), metres, as smplx returns them.
MANO_RIGHT_REST_JOINTS = np.array([
    [0.09566994, 0.00638343, 0.0061863], [0.00757268, 0.00118307, 0.0268723],
    [-0.02510622, 0.00519243, 0.02908936], [-0.04726213, 0.003894, 0.02897524],
    [0.00100949, 0.00490447, 0.00282876], [-0.03017318, 0.00676579, -0.00276574],
    [-0.05307782, 0.00551369, -0.00671026], [0.02688296, -0.0035569, -0.03702303],
    [0.00986855, -0.00349507, -0.04952181], [-0.00599835, -0.00418623, -0.05985371],
    [0.01393437, 0.00242601, -0.02048689], [-0.0143799, 0.00449301, -0.02558542],
    [-0.03790042, 0.0028049, -0.03321924], [0.07158022, -0.00913891, 0.03199915],
    [0.05194698, -0.00824762, 0.0556987], [0.02972924, -0.01368059, 0.07022282],
])  # fmt: skip


def _angle(a, b) -> float:
    return float(np.degrees(np.arccos(np.dot(a, b) / np.linalg.norm(a) / np.linalg.norm(b))))


def test_mano_frame_to_the_canonical_frame():
    """MANO_TO_CANONICAL carries MANO's hand to the canonical frame: fingers (wrist -> middle
    MCP) along -y, the thumb side (pinky MCP -> index MCP) along +x, the palm (the right hand's
    normal, thumb side x fingers) facing -z."""
    from seqhand.synth.flow import MANO_TO_CANONICAL as M

    j = MANO_RIGHT_REST_JOINTS
    fingers = M @ (j[4] - j[0])
    thumb_side = M @ (j[1] - j[7])
    palm = np.cross(thumb_side, fingers)
    assert _angle(fingers, [0, -1, 0]) < 15
    assert _angle(thumb_side, [1, 0, 0]) < 20
    assert _angle(palm, [0, 0, -1]) < 20


def _authors_reference_rotation(rng) -> Rotation:
    """get_ss_tu_tv's rotation written out; it acts on MANO's hand after the root rotation
    (pi, 0, 0) that the authors' script sets on every frame."""
    if rng.integers(0, 2) > 0.5:
        angle = rng.uniform(-np.pi, np.pi)
        axis = rng.uniform(-1.0, 1.0, 3)
        axis[rng.integers(0, 3)] = 1.0
        rot = angle * axis / np.linalg.norm(axis)
    else:
        a = rng.uniform(0.1, 0.3, 3)
        rot = np.array([-np.pi / 3 - a[0], -np.pi / 3 - a[1], np.pi / 3 + a[2]])
    return Rotation.from_rotvec(rot) * Rotation.from_rotvec([np.pi, 0, 0])


def _palm_angles(rot_mano: Rotation) -> np.ndarray:
    """Angle between the palm normal and the direction toward the camera (-z), degrees, for
    rotations of MANO's frame (the palm normal from MANO's joints)."""
    j = MANO_RIGHT_REST_JOINTS
    palm = np.cross(j[1] - j[7], j[4] - j[0])
    palm /= np.linalg.norm(palm)
    n = rot_mano.apply(palm)
    return np.degrees(np.arccos(np.clip(-n[:, 2], -1, 1)))


def test_authors_views_reproduce_their_distribution(bank, nn):
    """Start/end views of the authors' mode against their script's draws (mapped through MANO's
    own joints), and the view statistics of whole flows: palm within 30 deg of facing the camera
    ~51 %, back of the hand (palm normal > 120 deg from the camera) ~9 %."""
    from seqhand.synth.flow import MANO_TO_CANONICAL, authors_view_rotations

    rng = np.random.default_rng(0)
    ref = _palm_angles(Rotation.concatenate([_authors_reference_rotation(rng)
                                             for _ in range(4000)]))  # fmt: skip
    ours_canon = authors_view_rotations(rng.random((4000, 6)))
    ours = _palm_angles(ours_canon * Rotation.from_matrix(MANO_TO_CANONICAL))
    for lo, hi in ((0, 30), (30, 90), (90, 120), (120, 180)):
        a, b = ((ours >= lo) & (ours < hi)).mean(), ((ref >= lo) & (ref < hi)).mean()
        assert abs(a - b) < 0.035, (lo, hi, a, b)
    cfg = FlowConfig(views="authors", ego_fraction=0.0)
    f = generate_flows(bank, nn, seed=9, start=0, count=1500, config=cfg)
    rot = Rotation.from_rotvec(f.cam_rot.reshape(-1, 3))
    palm = np.degrees(np.arccos(np.clip(-rot.apply([0.0, 0.0, -1.0])[:, 2], -1, 1)))
    assert abs((palm < 30).mean() - 0.51) < 0.04
    assert abs((palm > 120).mean() - 0.09) < 0.03


def test_authors_update_rates(bank, nn):
    """Scale moves 5 % and translation 2 % of the remaining gap per frame (10-frame flows), the
    rotation a per-flow share in [0, 6 %) of the remaining geodesic angle."""
    f = generate_flows(bank, nn, seed=4, start=0, count=50, config=FlowConfig(views="authors"))
    for x, rate in ((f.cam_scale, 0.05), (f.cam_trans, 0.02)):
        end = x[:, 0] + (x[:, 1] - x[:, 0]) / rate
        np.testing.assert_allclose(x[:, 2:], x[:, 1:-1] + rate * (end[:, None] - x[:, 1:-1]),
                                   rtol=1e-9, atol=1e-6)  # fmt: skip
    r = Rotation.from_rotvec(f.cam_rot.reshape(-1, 3)).as_matrix().reshape(50, 10, 3, 3)
    step = np.degrees(np.arccos(np.clip((np.einsum("ftij,ftij->ft", r[:, 1:], r[:, :-1]) - 1) / 2,
                                        -1, 1)))  # fmt: skip
    assert 0.3 < step.mean() < 6.0
    assert np.all(step[:, 1:] <= step[:, :-1] + 1e-6)  # ease-out: each step a share of the rest
    s = f.cam_scale[:, 0] * FlowConfig().hand_extent / 224
    assert np.all((s > 1 / 2.1 - 1e-9) & (s < 1 / 1.7 + 1e-9))
