"""Background folders (lazy, corrupt files skipped and counted), procedural set, patches."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from seqhand.synth.backgrounds import (
    BackgroundError,
    CachedBackgrounds,
    ImageFolderBackgrounds,
    ProceduralBackgrounds,
    composite,
    load_backgrounds,
    sliding_patches,
)


def _coord_image(h: int, w: int) -> np.ndarray:
    """An image whose pixels encode their own position: R = x % 256, G = y % 256, B = x // 256."""
    yy, xx = np.mgrid[0:h, 0:w]
    return np.stack([xx % 256, yy % 256, xx // 256], -1).astype(np.uint8)


@pytest.fixture
def folder(tmp_path):
    rng = np.random.default_rng(0)
    Image.fromarray(rng.integers(0, 256, (40, 50, 3), dtype=np.uint8)).save(tmp_path / "a.jpg")
    (tmp_path / "b.jpg").write_bytes(b"\xff\xd8\xff\xe0 this is not a jpeg")  # corrupt
    good = tmp_path / "c.jpg"
    Image.fromarray(rng.integers(0, 256, (64, 64, 3), dtype=np.uint8)).save(good)
    (tmp_path / "d.JPG").write_bytes(good.read_bytes()[:300])  # truncated
    Image.fromarray(rng.integers(0, 256, (30, 20), dtype=np.uint8)).save(tmp_path / "e.png")
    Image.new("RGBA", (16, 16), (10, 20, 30, 128)).save(tmp_path / "f.png")
    (tmp_path / "notes.txt").write_text("ignored")
    return tmp_path


def test_folder_lists_images_and_decodes_lazily_to_rgb(folder):
    bg = ImageFolderBackgrounds(folder)
    assert bg.files == ["a.jpg", "b.jpg", "c.jpg", "d.JPG", "e.png", "f.png"]
    assert bg.skipped == {}  # nothing decoded yet
    a = bg[0]
    assert a.shape == (40, 50, 3) and a.dtype == np.uint8
    assert bg[4].shape == (30, 20, 3)  # greyscale -> RGB
    np.testing.assert_array_equal(bg[5][0, 0], [10, 20, 30])  # RGBA -> RGB
    assert bg[6].shape == a.shape  # indices wrap


def test_corrupt_files_are_skipped_and_counted(folder):
    bg = ImageFolderBackgrounds(folder)
    np.testing.assert_array_equal(bg[1], bg[2])  # b.jpg is corrupt: the next image is used
    np.testing.assert_array_equal(bg[3], bg[4])  # d.JPG is truncated
    assert sorted(bg.skipped) == ["b.jpg", "d.JPG"]
    summary = bg.skipped_summary()
    assert summary.startswith("2 unreadable background image(s) skipped") and "b.jpg" in summary
    assert ImageFolderBackgrounds(folder).scan() == 4


def test_empty_missing_and_unreadable_folders_raise(tmp_path):
    with pytest.raises(BackgroundError, match="no images"):
        ImageFolderBackgrounds(tmp_path)
    with pytest.raises(BackgroundError, match="does not exist"):
        ImageFolderBackgrounds(tmp_path / "missing")
    (tmp_path / "x.jpg").write_bytes(b"garbage")
    (tmp_path / "y.png").write_bytes(b"")
    bg = ImageFolderBackgrounds(tmp_path)
    with pytest.raises(BackgroundError, match="none of the 2 images could be decoded"):
        bg[0]


def test_recursive_folder_and_voc_root(tmp_path, folder):
    sub = folder / "sub"
    sub.mkdir()
    Image.new("RGB", (8, 8)).save(sub / "z.jpg")
    assert "sub/z.jpg" not in ImageFolderBackgrounds(folder).files
    assert "sub/z.jpg" in ImageFolderBackgrounds(folder, recursive=True).files
    # A VOC2012 root: the JPEGs are in JPEGImages/, the PNGs beside it are masks, not scenes.
    voc = tmp_path / "VOC2012"
    (voc / "JPEGImages").mkdir(parents=True)
    (voc / "SegmentationClass").mkdir()
    Image.new("RGB", (8, 8)).save(voc / "JPEGImages" / "2007_000027.jpg")
    Image.new("P", (8, 8)).save(voc / "SegmentationClass" / "2007_000027.png")
    assert load_backgrounds(voc).files == ["2007_000027.jpg"]
    assert load_backgrounds(folder).files[0] == "a.jpg"
    assert isinstance(load_backgrounds(None), ProceduralBackgrounds)


def test_procedural_set_is_deterministic_and_varied():
    a, b = (
        ProceduralBackgrounds(seed=5, size=(96, 80)),
        ProceduralBackgrounds(seed=5, size=(96, 80)),
    )
    for i in (7, 0, 3):
        np.testing.assert_array_equal(a[i], b[i])
    assert a[0].shape == (96, 80, 3) and a[0].dtype == np.uint8
    assert not np.array_equal(a[0], a[1])
    assert not np.array_equal(a[0], ProceduralBackgrounds(seed=6, size=(96, 80))[0])
    np.testing.assert_array_equal(a[len(a) + 2], a[2])
    kinds = {a.kind(i) for i in range(60)}
    assert kinds == {"gradient", "noise", "stripes", "clutter", "room"}
    stds = [a[i].astype(float).std() for i in range(20)]
    assert min(stds) > 2.0  # no flat images
    means = np.array([a[i].reshape(-1, 3).mean(0) for i in range(30)])
    assert np.ptp(means, axis=0).min() > 60  # colours vary across the set


def test_cached_backgrounds_equal_the_uncached_ones():
    plain = ProceduralBackgrounds(seed=3, size=(48, 40))
    one = plain[0].nbytes
    cached = CachedBackgrounds(ProceduralBackgrounds(seed=3, size=(48, 40)), max_bytes=3 * one)
    assert len(cached) == len(plain)
    for i in (4, 1, 4, 2, 9, 1, len(plain) + 4, 0, 9):  # hits, misses, evictions, wrapping
        np.testing.assert_array_equal(cached[i], plain[i])
    assert cached.hits == 1 and cached.misses == 8  # 3 images fit: LRU order
    assert cached[9] is cached[9] and not cached[9].flags.writeable
    assert cached._bytes <= 3 * one and len(cached._cache) == 3
    assert isinstance(load_backgrounds(None, cache_bytes=2**20), CachedBackgrounds)


def test_palette_lookup_equals_plain_indexing():
    from seqhand.synth.backgrounds import _apply, _palette

    rng = np.random.default_rng(0)
    lut = _palette(rng, 4)
    t = rng.uniform(-0.2, 1.2, (30, 20)).astype(np.float32)
    want = lut[np.clip(t * 255.0 + 0.5, 0, 255).astype(np.uint8)]
    got = _apply(lut, t)
    assert got.dtype == np.float32 and got.shape == (30, 20, 3)
    np.testing.assert_array_equal(got, want)


def test_sliding_patches_move_linearly_from_start_to_end():
    img = _coord_image(300, 400)
    t, w, h = 10, 224, 160
    patches = sliding_patches(img, t, w, h, np.random.default_rng(1))
    assert patches.shape == (t, h, w, 3) and patches.dtype == np.uint8
    x0 = patches[:, 0, 0, 0].astype(int) + 256 * patches[:, 0, 0, 2].astype(int)
    y0 = patches[:, 0, 0, 1].astype(int)
    for k in range(t):  # each frame is an exact crop at its corner
        np.testing.assert_array_equal(patches[k], img[y0[k] : y0[k] + h, x0[k] : x0[k] + w])
    rng = np.random.default_rng(1)
    ys, xs = rng.integers(0, 300 - h + 1), rng.integers(0, 400 - w + 1)
    ye, xe = rng.integers(0, 300 - h + 1), rng.integers(0, 400 - w + 1)
    frac = np.arange(t) / (t - 1)
    np.testing.assert_array_equal(x0, np.rint(xs + (xe - xs) * frac))
    np.testing.assert_array_equal(y0, np.rint(ys + (ye - ys) * frac))
    assert (x0[0], y0[0]) != (x0[-1], y0[-1])
    again = sliding_patches(img, t, w, h, np.random.default_rng(1))
    np.testing.assert_array_equal(again, patches)


def test_small_images_are_upscaled_and_single_frames_work():
    img = np.random.default_rng(2).integers(0, 256, (50, 70, 3), dtype=np.uint8)
    p = sliding_patches(img, 3, 224, 224, np.random.default_rng(3))
    assert p.shape == (3, 224, 224, 3)
    assert sliding_patches(img, 1, 32, 16, np.random.default_rng(3)).shape == (1, 16, 32, 3)
    with pytest.raises(ValueError, match="uint8"):
        sliding_patches(img.astype(float), 3, 10, 10, np.random.default_rng(0))


def test_composite_with_mask_and_alpha():
    rng = np.random.default_rng(4)
    fg = rng.integers(0, 256, (2, 8, 8, 3), dtype=np.uint8)
    bg = rng.integers(0, 256, (2, 8, 8, 3), dtype=np.uint8)
    mask = rng.random((2, 8, 8)) < 0.5
    over_black = np.where(mask[..., None], fg, 0).astype(np.uint8)
    np.testing.assert_array_equal(
        composite(over_black, mask, bg), np.where(mask[..., None], fg, bg)
    )
    alpha = rng.random((2, 8, 8)).astype(np.float32)
    premult = np.round(fg * alpha[..., None]).astype(np.uint8)
    out = composite(premult, alpha, bg)
    expected = premult + bg * (1 - alpha[..., None].astype(np.float64))
    assert np.abs(out - expected).max() <= 0.5 + 1e-4
    np.testing.assert_array_equal(composite(fg, np.ones((2, 8, 8)), bg), fg)
    np.testing.assert_array_equal(composite(np.zeros_like(fg), np.zeros((2, 8, 8)), bg), bg)
    np.testing.assert_array_equal(composite(over_black[0], mask[0], bg[0]),
                                  np.where(mask[0, ..., None], fg[0], bg[0]))  # fmt: skip
