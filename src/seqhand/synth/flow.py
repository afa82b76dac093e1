"""Pose flows (paper Sec. 3.2, Eq. 5-7) and their camera flows, β and colour template.

A pose flow walks from a random initial bank pose to a random final bank pose, snapping every
step to the nearest pose of the bank (Euclidean over the 63 numbers of canonical joints):

    P_0 = P_initial                                               (5)
    P_updated = P_{k-1} - (alpha / n) (P_{k-1} - P_final)         (6)
    P_k = argmin_i || P_updated - P_i ||                          (7)

for ``k = 1 .. n-1`` (``n`` frames in total, ``P_0`` included). ``P_updated`` is evaluated in
float64; the search is exact (:mod:`seqhand.synth.nn`), ties go to the lowest bank index.
When the bank is sparse relative to a step, ``P_k = P_{k-1}`` and the flow holds from there on
(a fixed point of Eq. 6-7; see :data:`DEFAULT_ALPHA`).

Per flow, independently of the pose: a *view mode* (third-person or egocentric), a weak-
perspective camera ``(R, s, t)`` sampled for the start and for the end and updated with the
same rule (Eq. 6 without the snap; the rotation moves ``alpha / n`` of the remaining geodesic
angle, ``R_k = R_{k-1} exp((alpha/n) log(R_{k-1}^T R_end))``), a shape ``beta ~ U[-2, 2]^10`` and
a colour-template index, both fixed for the flow.

Camera (``x2d = s * Pi(R X) + t``, image x right / y down, camera looking along +z), applied to
the bank's canonical frame (wrist at the origin, middle finger along -y, palm facing -z, thumb
toward +x; see :mod:`seqhand.synth.bank`): ``R = I`` shows the palm with the fingers up.

* third-person: ``R = Rz(roll) Rx(pitch) Ry(yaw)`` with yaw ~ U(-pi, pi) (palm, sides, back),
  pitch ~ U(-0.6, 0.6), roll ~ U(-pi/2, pi/2) (fingers anywhere from left through up to right);
* egocentric: the back of the hand toward the camera and the fingers pointing up and away:
  yaw = pi + U(-0.5, 0.5), pitch ~ U(-1.0, -0.2) (fingertips recede), roll ~ U(-0.6, 0.6), and
  the hand sits lower in the crop;
* ``s`` makes a hand of ``hand_extent`` metres span a fraction U(0.6, 0.95) of the crop;
  ``t`` puts the canonical palm point ``centre`` at the crop centre plus U(-0.12, 0.12) of the
  crop per axis (egocentric: +0.08 down).

A flow is a pure function of (bank, seed, index, config): all its random numbers come from
``numpy.random.default_rng(numpy.random.SeedSequence((seed, index)))``, and the bank is only
read. :func:`generate_flows` makes many flows at once (one batched nearest-neighbour query per
frame across all flows).
"""

from __future__ import annotations

import dataclasses

import numpy as np
from scipy.spatial.transform import Rotation

from seqhand.conventions import IMAGE_SIZE, NUM_BETAS, NUM_JOINTS
from seqhand.errors import SeqhandError

DEFAULT_FRAMES = 10
DEFAULT_ALPHA = 3.0
"""Update size of Eq. 6, chosen by the motion it gives (measurements in ``docs/pose_flows.md``):
with 10 frames each step aims at alpha/n = 30 % of the remaining gap; on the 2.2M-pose prior
bank a flow then closes about 2/3 of the distance to P_final, at a mean joint speed of ~9 mm in
its first frame, decaying (an ease-out motion); smaller alphas leave most flows far from
P_final, larger ones jump in two or three frames and then hold."""
VIEWS = ("third", "ego")
VIEW_MODES = ("authors", "seqhand")
"""Camera models of a flow (see the module docstring): ``"authors"`` - the authors' generator
(vanyoleyang/seqhand), ``"seqhand"`` - this project's earlier third-person/egocentric model."""

MANO_TO_CANONICAL = np.array([[0.0, 0.0, 1.0], [1.0, 0.0, 0.0], [0.0, 1.0, 0.0]])
"""Nominal rotation from MANO's model frame to the canonical bank frame. In MANO's frame (the
rest joints of MANO_RIGHT) the fingers point along -x, the thumb side is +z and the palm faces
-y; in the canonical frame the fingers point along -y, the thumb is +x and the palm faces -z."""
AUTHORS_ROOT = np.array([np.pi, 0.0, 0.0])
"""The MANO root rotation the authors' generator sets on every frame (``pose_param[:, 0] = pi``)."""


class FlowError(SeqhandError, ValueError):
    """Bad flow configuration or inputs."""


@dataclasses.dataclass(frozen=True)
class FlowConfig:
    """Options of flow generation (everything a flow depends on besides bank, seed and index).

    Attributes:
        n_frames: frames per flow, ``P_0`` included (the paper's n, default 10).
        alpha: update size of Eq. 6 (the step is ``alpha / n_frames`` of the remaining gap;
            values above ``n_frames`` overshoot P_final and come back, ``2 * n_frames`` or more
            diverge).
        image_size: crop side in pixels (the camera's t and s are for this crop).
        hand_extent: nominal hand size in metres used to set the scale.
        fill: range of the crop fraction the hand spans.
        offset: max offset of the palm point from the crop centre, as a fraction of the crop.
        ego_fraction: probability of an egocentric flow.
        num_templates: number of colour templates to pick from.
        beta_range: betas ~ U[-beta_range, beta_range]^10.
        centre: canonical-frame point (metres) that the camera centres.
        views: the camera model, ``"authors"`` or ``"seqhand"`` (:data:`VIEW_MODES`, module
            docstring). ``ego_fraction`` of the flows use the egocentric camera in both.
        literal: follow Eq. 7 literally. Then a step whose nearest bank pose is the pose it
            started from stays there for good (``P_updated`` depends only on ``P_{k-1}``), and
            on a bank sparser than BigHand's 2.2M captured poses most flows freeze within a few
            frames (built-in prior, 50,000 poses: 64% of flows frozen by frame 3, 95% by frame
            5). By default (``False``) such a step - and one that returns to ``P_{k-2}`` -
            takes the nearest bank pose to ``P_updated`` other than ``P_{k-1}`` and
            ``P_{k-2}``: every other step is Eq. 7's, and a flow rests only once it reaches
            P_final. See docs/pose_flows.md.
    """

    n_frames: int = DEFAULT_FRAMES
    alpha: float = DEFAULT_ALPHA
    image_size: int = IMAGE_SIZE
    hand_extent: float = 0.2
    fill: tuple[float, float] = (0.6, 0.95)
    offset: float = 0.12
    ego_fraction: float = 0.2
    num_templates: int = 8
    beta_range: float = 2.0
    centre: tuple[float, float, float] = (0.0, -0.09, 0.0)
    literal: bool = False
    views: str = "authors"

    def __post_init__(self) -> None:
        if self.n_frames < 1:
            raise FlowError(f"n_frames must be >= 1, got {self.n_frames}")
        if not 0.0 < self.alpha < 2 * self.n_frames:  # Eq. 6 contracts iff 0 < alpha/n < 2
            raise FlowError(
                f"alpha must be in (0, 2 * n_frames) = (0, {2 * self.n_frames}) for Eq. 6 to "
                f"move toward P_final, got {self.alpha}"
            )
        if not 0.0 <= self.ego_fraction <= 1.0:
            raise FlowError(f"ego_fraction must be in [0, 1], got {self.ego_fraction}")
        if self.views not in VIEW_MODES:
            raise FlowError(f"views must be one of {VIEW_MODES}, got {self.views!r}")
        if self.num_templates < 1:
            raise FlowError(f"num_templates must be >= 1, got {self.num_templates}")


@dataclasses.dataclass(frozen=True)
class PoseFlow:
    """One flow of ``T`` frames.

    Attributes:
        joints: ``(T, 21, 3)`` float32 canonical joints, metres (copies of bank poses).
        bank_indices: ``(T,)`` int64 bank index of each frame.
        cam_rot: ``(T, 3)`` camera rotation R (axis-angle, radians).
        cam_scale: ``(T,)`` s, pixels per metre.
        cam_trans: ``(T, 2)`` t, pixels.
        betas: ``(10,)`` shape, fixed for the flow.
        template: colour-template index, fixed for the flow.
        view: ``"third"`` or ``"ego"``.
        seed, index: what the flow is a function of (with the bank and the config).
    """

    joints: np.ndarray
    bank_indices: np.ndarray
    cam_rot: np.ndarray
    cam_scale: np.ndarray
    cam_trans: np.ndarray
    betas: np.ndarray
    template: int
    view: str
    seed: int
    index: int


@dataclasses.dataclass(frozen=True)
class FlowBatch:
    """``F`` flows stacked: the fields of :class:`PoseFlow` with a leading flow axis.

    ``bank_indices (F, T)``, ``cam_rot (F, T, 3)``, ``cam_scale (F, T)``, ``cam_trans (F, T, 2)``,
    ``betas (F, 10)``, ``template (F,)``, ``ego (F,)`` bool, ``index (F,)``; joints are
    gathered on demand (:meth:`joints`) so a batch of many flows stays small.
    """

    bank_indices: np.ndarray
    cam_rot: np.ndarray
    cam_scale: np.ndarray
    cam_trans: np.ndarray
    betas: np.ndarray
    template: np.ndarray
    ego: np.ndarray
    seed: int
    index: np.ndarray

    def __len__(self) -> int:
        return int(self.bank_indices.shape[0])

    def joints(self, bank) -> np.ndarray:
        """``(F, T, 21, 3)`` float32 joints of every frame (a copy, gathered from ``bank``)."""
        return _bank_joints(bank)[self.bank_indices]

    def flow(self, i: int, bank) -> PoseFlow:
        """Flow ``i`` of the batch as a :class:`PoseFlow`."""
        return PoseFlow(
            joints=_bank_joints(bank)[self.bank_indices[i]],
            bank_indices=self.bank_indices[i].copy(),
            cam_rot=self.cam_rot[i].copy(),
            cam_scale=self.cam_scale[i].copy(),
            cam_trans=self.cam_trans[i].copy(),
            betas=self.betas[i].copy(),
            template=int(self.template[i]),
            view=VIEWS[int(self.ego[i])],
            seed=self.seed,
            index=int(self.index[i]),
        )


def _bank_joints(bank) -> np.ndarray:
    j = bank.joints if hasattr(bank, "joints") else np.asarray(bank)
    if j.ndim == 2:
        j = j.reshape(len(j), NUM_JOINTS, 3)
    return j


# --------------------------------------------------------------------------------------------
# Eq. 5-7
# --------------------------------------------------------------------------------------------
def pose_flow_indices(
    points: np.ndarray,
    nn,
    initial: np.ndarray,
    final: np.ndarray,
    n_frames: int,
    alpha: float,
    literal: bool = False,
) -> np.ndarray:
    """Bank indices ``(F, n_frames)`` of ``F`` pose flows (Eq. 5-7), all flows per query batch.

    Args:
        points: ``(N, 63)`` float32 bank (read only).
        nn: a nearest-neighbour index over ``points`` (:mod:`seqhand.synth.nn`).
        initial, final: ``(F,)`` bank indices of P_initial and P_final.
        n_frames: n (frames including P_0). alpha: the update size.
        literal: Eq. 7 as written; otherwise a step that snaps back to ``P_{k-1}`` or
            ``P_{k-2}`` takes the nearest pose other than those (see :class:`FlowConfig`).

    ``P_updated`` depends only on ``P_{k-1}`` and ``P_final``, so once a literal step snaps back
    to the pose it started from, every later step would ask the same query and get the same
    answer: such flows are not queried again (identical result, fewer searches). Otherwise a
    flow that has reached P_final rests there.
    """
    initial = np.asarray(initial, np.int64)
    final = np.asarray(final, np.int64)
    out = np.empty((len(initial), n_frames), np.int64)
    out[:, 0] = initial
    target = points[final].astype(np.float64)
    step = float(alpha) / float(n_frames)
    moving = np.ones(len(initial), bool)
    for k in range(1, n_frames):
        if not literal:
            moving = out[:, k - 1] != final
        elif k >= 2:  # a flow whose last step snapped back to the same pose is at a fixed
            moving &= out[:, k - 1] != out[:, k - 2]  # point: its next query is identical
        out[:, k] = out[:, k - 1]
        if not moving.any():
            continue
        rows = np.flatnonzero(moving)
        prev_i = out[rows, k - 1]
        prev = points[prev_i].astype(np.float64)
        updated = prev - step * (prev - target[rows])  # Eq. 6
        out[rows, k], _ = nn.query(updated, hint=prev_i)  # Eq. 7
        if not literal:  # snapped back to P_{k-1} (or to P_{k-2}: a 2-cycle): the nearest
            recent = out[rows, max(k - 2, 0) : k]  # pose other than those two
            back = (out[rows, k, None] == recent).any(1)
            if back.any() and len(nn) > recent.shape[1]:  # (a bank of 2 poses has no other)
                out[rows[back], k], _ = nn.query(
                    updated[back], hint=prev_i[back], exclude=recent[back]
                )
    return out


def geodesic_flow(start: Rotation, end: Rotation, n_frames: int, alpha: float) -> np.ndarray:
    """Rotation flows ``(F, n_frames, 3)`` (axis-angle): Eq. 6 on SO(3), no snapping.

    ``R_0 = start``; ``R_k = R_{k-1} exp((alpha/n) log(R_{k-1}^T end))``.
    """
    return rate_geodesic_flow(start, end, n_frames, float(alpha) / float(n_frames))


def linear_flow(start: np.ndarray, end: np.ndarray, n_frames: int, alpha: float) -> np.ndarray:
    """Eq. 6 without snapping for vectors: ``(F, ...)`` -> ``(F, n_frames, ...)``."""
    return rate_flow(start, end, n_frames, float(alpha) / float(n_frames))


# --------------------------------------------------------------------------------------------
# Per-flow random numbers and cameras
# --------------------------------------------------------------------------------------------
_N_UNIFORM = 1 + 2 * 6 + NUM_BETAS + 1  # view, 2 x (yaw, pitch, roll, fill, ox, oy), betas, tpl
_N_AUTHORS = 2 * 6 + 1  # 2 x (branch, a1/ax, a2/ay, a3/az, angle, unit axis), rotation speed


def flow_randoms(
    seed: int, indices: np.ndarray, bank_size: int, extra: int = 0
) -> tuple[np.ndarray, np.ndarray]:
    """Per-flow random numbers: ``(F, 2)`` bank indices (initial, final) and ``(F, 24 + extra)``
    uniforms.

    Flow ``i`` draws from ``default_rng(SeedSequence((seed, i)))``: first two integers in
    ``[0, bank_size)``, then 24 uniforms in [0, 1) (view, start camera, end camera, betas,
    template), then ``extra`` more (the authors' camera model), so the first 24 do not depend
    on ``extra``.
    """
    ids = np.empty((len(indices), 2), np.int64)
    u = np.empty((len(indices), _N_UNIFORM + extra))
    for r, i in enumerate(np.asarray(indices, np.int64)):
        rng = np.random.default_rng(np.random.SeedSequence((int(seed), int(i))))
        ids[r] = rng.integers(0, bank_size, size=2)
        u[r] = rng.random(_N_UNIFORM + extra)
    return ids, u


def _lerp(u: np.ndarray, lo: float, hi: float) -> np.ndarray:
    return lo + (hi - lo) * u


def sample_cameras(u: np.ndarray, ego: np.ndarray, config: FlowConfig):
    """Cameras from uniforms ``u (F, 6)`` = (yaw, pitch, roll, fill, ox, oy) per flow.

    Returns ``(Rotation (F,), s (F,), t (F, 2))`` (see the module docstring for the ranges).
    """
    yaw = np.where(ego, np.pi + _lerp(u[:, 0], -0.5, 0.5), _lerp(u[:, 0], -np.pi, np.pi))
    pitch = np.where(ego, _lerp(u[:, 1], -1.0, -0.2), _lerp(u[:, 1], -0.6, 0.6))
    roll = np.where(ego, _lerp(u[:, 2], -0.6, 0.6), _lerp(u[:, 2], -np.pi / 2, np.pi / 2))
    rot = Rotation.from_euler("ZXY", np.stack([roll, pitch, yaw], 1))  # Rz @ Rx @ Ry
    size = float(config.image_size)
    s = _lerp(u[:, 3], *config.fill) * size / config.hand_extent
    off = _lerp(u[:, 4:6], -config.offset, config.offset) * size
    off[:, 1] += np.where(ego, 0.08 * size, 0.0)
    c = rot.apply(np.tile(np.asarray(config.centre, np.float64), (len(u), 1)))
    t = 0.5 * size + off - s[:, None] * c[:, :2]
    return rot, s, t


def authors_view_rotations(u: np.ndarray) -> Rotation:
    """The authors' view rotation (``get_ss_tu_tv`` of vanyoleyang/seqhand), in the canonical
    frame, from uniforms ``u (F, 6)`` = (branch, x1, x2, x3, angle, unit axis).

    Branch ``u[:, 0] < 0.5``: a fixed frontal view ``r = (-pi/3 - a1, -pi/3 - a2, pi/3 + a3)``,
    ``a ~ U(0.1, 0.3)^3``; otherwise a broad one: an angle ``U(-pi, pi)`` about an axis with
    components ``U(-1, 1)`` of which one (chosen uniformly) is set to 1, normalised. The view
    acts on MANO's hand after the root rotation (pi, 0, 0); expressed for canonical points:
    ``R = R_view R_x(pi) M^T`` with ``M`` = :data:`MANO_TO_CANONICAL`.
    """
    frontal = u[:, 0] < 0.5
    a = _lerp(u[:, 1:4], 0.1, 0.3)
    r_front = np.stack([-np.pi / 3 - a[:, 0], -np.pi / 3 - a[:, 1], np.pi / 3 + a[:, 2]], 1)
    axis = _lerp(u[:, 1:4], -1.0, 1.0)
    axis[np.arange(len(u)), np.minimum((u[:, 5] * 3).astype(int), 2)] = 1.0
    axis /= np.linalg.norm(axis, axis=1, keepdims=True)
    r_broad = _lerp(u[:, 4], -np.pi, np.pi)[:, None] * axis
    view = Rotation.from_rotvec(np.where(frontal[:, None], r_front, r_broad))
    place = Rotation.from_rotvec(AUTHORS_ROOT) * Rotation.from_matrix(MANO_TO_CANONICAL.T)
    return view * place


AUTHORS_RATES = {"scale": 0.05, "trans": 0.02, "rot_max": 0.06}
"""Per-frame share of the remaining gap in the authors' generator (for 10-frame flows): scale
0.5/10, translation 0.2/10, rotation U(0, 0.6)/10 drawn per flow."""


def authors_fill(u: np.ndarray) -> np.ndarray:
    """The authors' scale: the hand's extent is 1 / U(1.7, 2.1) of the crop."""
    return 1.0 / _lerp(u, 1.7, 2.1)


def authors_posed_scale(
    scale: np.ndarray, extent_first: float, extent_last: float, nominal: float
) -> np.ndarray:
    """The authors' scale flow for the posed hand: ``scale`` ``(T,)`` was drawn by
    :func:`rate_flow` as if the hand's extent were ``nominal`` metres at both ends; the authors
    divide by the extent of the hand actually posed in the first and in the last frame (its
    vertices at their root rotation, ``max(u range, v range)``), so a curled or small hand is
    drawn as large as an open one. Returns the same flow between the rescaled end scales."""
    scale = np.asarray(scale, np.float64)
    t = len(scale)
    w = 1.0 - (1.0 - AUTHORS_RATES["scale"] * 10.0 / t) ** np.arange(t)  # share of the gap
    end = scale[0] + (scale[-1] - scale[0]) / w[-1] if t > 1 else scale[0]
    return (scale[0] * nominal / extent_first) * (1.0 - w) + (end * nominal / extent_last) * w


def authors_extent(verts: np.ndarray) -> np.ndarray:
    """``(T, V, 3)`` vertices in the canonical bank frame (wrist at the origin) -> ``(T,)`` the
    authors' extent: ``max(u range, v range)`` with MANO's root rotation ``(pi, 0, 0)``."""
    base = np.einsum("ij,tvj->tvi", MANO_TO_CANONICAL.T, verts)[..., :2]  # (pi,0,0) keeps ranges
    return np.ptp(base, axis=1).max(1)


def rate_flow(start: np.ndarray, end: np.ndarray, n_frames: int, rate) -> np.ndarray:
    """``x_k = x_{k-1} - rate (x_{k-1} - end)`` for vectors ``(F, ...)``; ``rate`` scalar or
    ``(F,)`` -> ``(F, n_frames, ...)`` (Eq. 6's rule with ``alpha / n = rate``)."""
    rate = np.broadcast_to(np.asarray(rate, np.float64), (len(start),))
    rate = rate.reshape((-1,) + (1,) * (np.ndim(start) - 1))
    out = np.empty((len(start), n_frames) + np.shape(start)[1:])
    cur = np.asarray(start, np.float64)
    out[:, 0] = cur
    for k in range(1, n_frames):
        cur = cur - rate * (cur - end)
        out[:, k] = cur
    return out


def rate_geodesic_flow(start: Rotation, end: Rotation, n_frames: int, rate) -> np.ndarray:
    """Rotation flows ``(F, n_frames, 3)``: each frame turns a share ``rate`` (scalar or
    ``(F,)``) of the remaining geodesic angle, ``R_k = R_{k-1} exp(rate log(R_{k-1}^T end))``."""
    rate = np.broadcast_to(np.asarray(rate, np.float64), (len(start),))
    out = np.empty((len(start), n_frames, 3))
    cur = start
    out[:, 0] = cur.as_rotvec()
    for k in range(1, n_frames):
        rel = (cur.inv() * end).as_rotvec()
        cur = cur * Rotation.from_rotvec(rate[:, None] * rel)
        out[:, k] = cur.as_rotvec()
    return out


def _authors_cameras(u: np.ndarray, ua: np.ndarray, ego: np.ndarray, config: FlowConfig):
    """Start or end cameras of the authors' model: their view rotation (egocentric flows: the
    egocentric camera of :func:`sample_cameras`), their scale, our centring."""
    rot_e, _, _ = sample_cameras(u, ego, config)
    rot_a = authors_view_rotations(ua)
    quat = np.where(ego[:, None], rot_e.as_quat(), rot_a.as_quat())
    rot = Rotation.from_quat(quat)
    size = float(config.image_size)
    s = authors_fill(u[:, 3]) * size / config.hand_extent
    off = _lerp(u[:, 4:6], -config.offset, config.offset) * size
    off[:, 1] += np.where(ego, 0.08 * size, 0.0)
    c = rot.apply(np.tile(np.asarray(config.centre, np.float64), (len(u), 1)))
    t = 0.5 * size + off - s[:, None] * c[:, :2]
    return rot, s, t


def generate_flows(
    bank,
    nn,
    seed: int,
    start: int = 0,
    count: int = 1,
    config: FlowConfig | None = None,
) -> FlowBatch:
    """Flows ``start .. start + count - 1`` of ``seed`` (each a pure function of its index).

    Args:
        bank: a :class:`~seqhand.synth.bank.PoseBank` (or an ``(N, 21, 3)`` / ``(N, 63)`` array);
            only read.
        nn: a nearest-neighbour index over the bank's ``(N, 63)`` points (exact methods give
            identical flows; see :mod:`seqhand.synth.nn`).
        seed, start, count: which flows.
        config: :class:`FlowConfig` (default: the paper's 10 frames, :data:`DEFAULT_ALPHA`).
    """
    config = config or FlowConfig()
    joints = _bank_joints(bank)
    points = joints.reshape(len(joints), NUM_JOINTS * 3)
    if len(nn) != len(points):
        raise FlowError(f"the NN index has {len(nn)} points but the bank has {len(points)}")
    index = np.arange(start, start + count, dtype=np.int64)
    authors = config.views == "authors"
    ids, u = flow_randoms(seed, index, len(points), _N_AUTHORS if authors else 0)
    t_frames, alpha = config.n_frames, config.alpha
    bank_idx = pose_flow_indices(points, nn, ids[:, 0], ids[:, 1], t_frames, alpha,
                                 config.literal)  # fmt: skip
    ego = u[:, 0] < config.ego_fraction
    if authors:
        ua = u[:, _N_UNIFORM:]
        r0, s0, t0 = _authors_cameras(u[:, 1:7], ua[:, 0:6], ego, config)
        r1, s1, t1 = _authors_cameras(u[:, 7:13], ua[:, 6:12], ego, config)
        n = AUTHORS_RATES
        scale10 = 10.0 / t_frames  # the rates are for the authors' 10-frame flows
        rot_rate = _lerp(ua[:, 12], 0.0, n["rot_max"] * scale10)
        cam_rot = rate_geodesic_flow(r0, r1, t_frames, rot_rate)
        cam_scale = rate_flow(s0, s1, t_frames, n["scale"] * scale10)
        cam_trans = rate_flow(t0, t1, t_frames, n["trans"] * scale10)
    else:
        r0, s0, t0 = sample_cameras(u[:, 1:7], ego, config)
        r1, s1, t1 = sample_cameras(u[:, 7:13], ego, config)
        cam_rot = geodesic_flow(r0, r1, t_frames, alpha)
        cam_scale = linear_flow(s0, s1, t_frames, alpha)
        cam_trans = linear_flow(t0, t1, t_frames, alpha)
    betas = _lerp(u[:, 13 : 13 + NUM_BETAS], -config.beta_range, config.beta_range)
    template = np.minimum((u[:, _N_UNIFORM - 1] * config.num_templates).astype(np.int64),
                          config.num_templates - 1)  # fmt: skip
    return FlowBatch(
        bank_indices=bank_idx,
        cam_rot=cam_rot,
        cam_scale=cam_scale,
        cam_trans=cam_trans,
        betas=betas,
        template=template,
        ego=ego,
        seed=int(seed),
        index=index,
    )


def generate_flow(bank, nn, seed: int, index: int, config: FlowConfig | None = None) -> PoseFlow:
    """Flow ``index`` of ``seed`` as a :class:`PoseFlow` (same as in any batch)."""
    return generate_flows(bank, nn, seed, index, 1, config).flow(0, bank)


def flow_statistics(points: np.ndarray, bank_indices: np.ndarray, final: np.ndarray) -> dict:
    """Speed and convergence of flows (joint distances in millimetres).

    Args:
        points: ``(N, 63)`` bank. bank_indices: ``(F, T)``. final: ``(F,)`` P_final indices.
    Returns: mean per-frame joint displacement, the remaining distance to P_final over frames
    (mean per-joint distance, and relative to the start), the fraction of frames that repeat the
    previous pose and the fraction of flows whose last frame is P_final.
    """
    p = points[bank_indices].reshape(bank_indices.shape + (NUM_JOINTS, 3)).astype(np.float64)
    f = points[final].reshape(-1, 1, NUM_JOINTS, 3).astype(np.float64)
    step = np.linalg.norm(np.diff(p, axis=1), axis=-1).mean(-1) * 1000.0  # (F, T-1)
    dist = np.linalg.norm(p - f, axis=-1).mean(-1) * 1000.0  # (F, T)
    rel = dist / np.maximum(dist[:, :1], 1e-9)
    return {
        "mean_step_mm": float(step.mean()) if step.size else 0.0,
        "step_mm_per_frame": np.round(step.mean(0), 3).tolist(),
        "dist_to_final_mm": np.round(dist.mean(0), 3).tolist(),
        "dist_to_final_rel": np.round(rel.mean(0), 4).tolist(),
        "repeat_fraction": float((np.diff(bank_indices, axis=1) == 0).mean()) if step.size else 0,
        "reached_final": float((bank_indices[:, -1] == final).mean()),
    }
