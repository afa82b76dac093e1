"""Boxes and crops: the crop <-> full-image map, for points and images, both directions."""

from __future__ import annotations

import numpy as np
import pytest

from seqhand.geometry.crop import Box, BoxError, CropTransform, full_frame_box

RNG = np.random.default_rng(7)


def ramp(h: int, w: int, a: float = 0.7, b: float = -0.3, c: float = 5.0) -> np.ndarray:
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float64)
    return (a * xx + b * yy + c).astype(np.float32)


def crop_pixel_centres(size: int) -> np.ndarray:
    jj, ii = np.meshgrid(np.arange(size), np.arange(size))
    return np.stack([jj, ii], -1).astype(np.float64)


def naive_to_crop(ct: CropTransform, u: float, v: float) -> tuple[float, float]:
    """The formula of the module docstring, written out."""
    k = ct.size / ct.side
    half = ct.side / 2
    up = (ct.cx + half - u) * k - 0.5 if ct.mirror else (u - ct.cx + half) * k - 0.5
    return up, (v - ct.cy + half) * k - 0.5


def naive_bilinear(img: np.ndarray, u: float, v: float, pad: float) -> float:
    """Bilinear sample of a 2D image at pixel coordinates (u, v), padded outside."""
    h, w = img.shape

    def px(i, j):
        return img[i, j] if 0 <= i < h and 0 <= j < w else pad

    j0, i0 = int(np.floor(u)), int(np.floor(v))
    fu, fv = u - j0, v - i0
    return (
        (1 - fu) * (1 - fv) * px(i0, j0)
        + fu * (1 - fv) * px(i0, j0 + 1)
        + (1 - fu) * fv * px(i0 + 1, j0)
        + fu * fv * px(i0 + 1, j0 + 1)
    )


TRANSFORMS = [
    CropTransform(50.3, 40.7, 88.0, 64),  # shrink 1.375x
    CropTransform(50.3, 40.7, 88.0, 64, mirror=True),
    CropTransform(20.0, 15.0, 30.0, 96),  # enlarge
    CropTransform(-5.0, 3.0, 200.0, 32, mirror=True),  # shrink 6x, off the border
]


# -- boxes ---------------------------------------------------------------------------------------
def test_box_rejects_bad_corners_and_sides():
    with pytest.raises(BoxError, match="x0 <= x1"):
        Box(10, 0, 5, 5)
    with pytest.raises(BoxError, match="finite"):
        Box(0, 0, float("nan"), 5)
    with pytest.raises(BoxError, match="side"):
        Box(0, 0, 1, 1, side="up")
    with pytest.raises(BoxError, match="empty box"):
        CropTransform.from_box(Box(3, 3, 3, 3), 64)


def test_box_from_points_is_the_tight_box():
    pts = RNG.uniform(-10, 100, size=(21, 2))
    b = Box.from_points(np.concatenate([pts, [[np.nan, 5.0]]]))
    assert b.as_array() == pytest.approx([*pts.min(0), *pts.max(0)])
    assert b.scaled(2.0).longer_side == pytest.approx(2 * b.longer_side)
    assert b.scaled(2.0).center == pytest.approx(b.center)


def test_crop_is_2_2_times_the_longer_side_around_the_box_centre():
    box = Box(100, 50, 140, 110)  # 40 x 60
    ct = CropTransform.from_box(box, 224)
    assert ct.side == pytest.approx(2.2 * 60)
    assert (ct.cx, ct.cy) == pytest.approx(box.center)
    # The box centre lands on the crop's centre; the longer side spans S / 2.2 crop pixels.
    assert ct.to_crop(np.array(box.center)) == pytest.approx([111.5, 111.5])
    top, bottom = ct.to_crop(np.array([[120, 50], [120, 110]]))
    assert bottom[1] - top[1] == pytest.approx(224 / 2.2)


# -- points --------------------------------------------------------------------------------------
@pytest.mark.parametrize("ct", TRANSFORMS)
def test_point_map_matches_the_formula_and_round_trips(ct):
    pts = RNG.uniform(-50, 300, size=(40, 2))
    crop = ct.to_crop(pts)
    naive = np.array([naive_to_crop(ct, u, v) for u, v in pts])
    np.testing.assert_allclose(crop, naive, atol=1e-9)
    np.testing.assert_allclose(ct.to_full(crop), pts, atol=1e-9)  # full -> crop -> full
    q = RNG.uniform(-5, ct.size + 5, size=(40, 2))
    np.testing.assert_allclose(ct.to_crop(ct.to_full(q)), q, atol=1e-9)  # crop -> full -> crop
    # shapes (..., 2) pass through
    assert ct.to_full(RNG.uniform(size=(3, 5, 2))).shape == (3, 5, 2)


def test_mirror_flips_crop_columns():
    a = CropTransform(30.0, 20.0, 50.0, 64)
    b = CropTransform(30.0, 20.0, 50.0, 64, mirror=True)
    pts = RNG.uniform(0, 60, size=(10, 2))
    pa, pb = a.to_crop(pts), b.to_crop(pts)
    np.testing.assert_allclose(pb[:, 0], 63 - pa[:, 0], atol=1e-9)
    np.testing.assert_allclose(pb[:, 1], pa[:, 1], atol=1e-9)


# -- images --------------------------------------------------------------------------------------
@pytest.mark.parametrize("ct", TRANSFORMS)
def test_image_crop_follows_the_point_map(ct):
    """A linear image is reproduced exactly: crop pixel (j, i) holds the image's value at
    to_full(j, i) (wherever the filters see no padding)."""
    h, w = 90, 120
    img = ramp(h, w)
    out = ct.crop_image(img, pad_value=-1e4)
    full = ct.to_full(crop_pixel_centres(ct.size))
    expected = 0.7 * full[..., 0] - 0.3 * full[..., 1] + 5.0
    reach = 1.5 * max(1.0, np.floor(ct.side / ct.size)) + 1  # filter reach in full pixels
    inside = (
        (full[..., 0] >= reach)
        & (full[..., 0] <= w - 1 - reach)
        & (full[..., 1] >= reach)
        & (full[..., 1] <= h - 1 - reach)
    )
    assert inside.sum() > 50
    np.testing.assert_allclose(out[inside], expected[inside], atol=2e-3)


def test_enlarging_crop_is_bilinear_sampling_against_a_naive_reference():
    img = RNG.uniform(0, 255, size=(30, 40)).astype(np.float32)
    ct = CropTransform(12.3, 7.9, 14.0, 20, mirror=True)  # runs off the top and left
    out = ct.crop_image(img, pad_value=17.0)
    ref = np.array(
        [[naive_bilinear(img, *ct.to_full(np.array([j, i], float)), 17.0) for j in range(20)]
         for i in range(20)]
    )  # fmt: skip
    np.testing.assert_allclose(out, ref, atol=1e-3)


def test_shrinking_crop_is_block_average_then_bilinear_against_a_naive_reference():
    img = RNG.uniform(0, 255, size=(40, 50)).astype(np.float32)
    ct = CropTransform(24.6, 19.2, 33.0, 12)  # 2.75x smaller: 2x2 blocks, then bilinear
    out = ct.crop_image(img, pad_value=0.0)
    # naive: average 2x2 blocks on the grid the implementation uses (aligned to its region
    # origin, which is floor(x0) - margin), then bilinear on the block centres.
    n = 2
    x0, y0 = ct.origin
    ox, oy = int(np.floor(x0)) - (2 * n + 2), int(np.floor(y0)) - (2 * n + 2)
    padded = np.zeros((200, 200), np.float64)
    padded[100 : 100 + 40, 100 : 100 + 50] = img

    def block(i, j):  # block (i, j) of the region grid; centre at ox + n j + 0.5, oy + n i + 0.5
        r, c = 100 + oy + n * i, 100 + ox + n * j
        return padded[r : r + n, c : c + n].mean()

    ref = np.zeros((12, 12))
    for i in range(12):
        for j in range(12):
            u, v = ct.to_full(np.array([j, i], float))
            qx, qy = (u - ox - (n - 1) / 2) / n, (v - oy - (n - 1) / 2) / n
            jx, iy = int(np.floor(qx)), int(np.floor(qy))
            fx, fy = qx - jx, qy - iy
            ref[i, j] = (
                (1 - fx) * (1 - fy) * block(iy, jx)
                + fx * (1 - fy) * block(iy, jx + 1)
                + (1 - fx) * fy * block(iy + 1, jx)
                + fx * fy * block(iy + 1, jx + 1)
            )
    np.testing.assert_allclose(out, ref, atol=1e-3)


def test_unit_scale_aligned_crop_is_an_exact_slice_and_mirror_flips_it():
    img = RNG.integers(0, 256, size=(50, 60, 3), dtype=np.uint8)
    # crop square = pixels 10..41 x 5..36 (pixel edges at -0.5): L = S = 32
    ct = CropTransform(10 + 15.5, 5 + 15.5, 32.0, 32)
    out = ct.crop_image(img)
    assert out.dtype == np.uint8
    np.testing.assert_array_equal(out, img[5:37, 10:42])
    mir = CropTransform(ct.cx, ct.cy, 32.0, 32, mirror=True).crop_image(img)
    np.testing.assert_array_equal(mir, img[5:37, 10:42][:, ::-1])


def test_crop_off_the_border_is_padded():
    img = np.full((40, 40, 3), 200, np.uint8)
    ct = CropTransform(0.0, 0.0, 40.0, 40)  # the top-left quarter of the crop is the image
    out = ct.crop_image(img, pad_value=9)
    full = ct.to_full(crop_pixel_centres(40))
    outside = (full[..., 0] < -1.5) | (full[..., 1] < -1.5)
    inside = (full[..., 0] > 0.5) & (full[..., 1] > 0.5)
    assert np.all(out[outside] == 9)
    assert np.all(out[inside] == 200)


@pytest.mark.parametrize("ct", TRANSFORMS[:3])
def test_uncrop_inverts_crop(ct):
    """crop -> uncrop gives back a linear image on every covered pixel."""
    h, w = 90, 120
    img = ramp(h, w)
    crop = ct.crop_image(img, pad_value=0.0)
    back, covered = ct.uncrop_image(crop, (h, w), fill=-1.0)
    yy, xx = np.mgrid[0:h, 0:w]
    c = ct.to_crop(np.stack([xx, yy], -1).astype(float))
    expect_cov = (c >= -1e-9).all(-1) & (c <= ct.size - 1 + 1e-9).all(-1)
    np.testing.assert_array_equal(covered, expect_cov)
    assert np.all(back[~covered] == -1.0)
    reach = 1.5 * max(1.0, np.floor(ct.side / ct.size)) + 2
    ok = covered & (xx >= reach) & (xx <= w - 1 - reach) & (yy >= reach) & (yy <= h - 1 - reach)
    assert ok.sum() > 100
    np.testing.assert_allclose(back[ok], img[ok], atol=3e-3)


def test_full_frame_box_crop_is_the_frame():
    img = RNG.integers(0, 256, size=(64, 64, 3), dtype=np.uint8)
    ct = CropTransform.from_box(full_frame_box(64, 64), 64)
    np.testing.assert_array_equal(ct.crop_image(img), img)
    assert ct.to_crop(np.array([[0.0, 0.0], [63.0, 63.0]])) == pytest.approx(
        np.array([[0.0, 0.0], [63.0, 63.0]])
    )


def test_bad_images_and_points_are_refused():
    ct = TRANSFORMS[0]
    with pytest.raises(BoxError, match="image must be"):
        ct.crop_image(np.zeros((4,), np.uint8))
    with pytest.raises(BoxError, match=r"\(\.\.\., 2\)"):
        ct.to_crop(np.zeros((3, 3)))
