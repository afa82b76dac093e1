"""Synthetic-to-real fine-tuning (Eq. 15): one-frame real items, Train_C vs Train, resume."""

from __future__ import annotations

import shutil

import numpy as np
import pytest
import torch
import yaml

from data_fixtures import PALETTE, write_freihand, write_stb
from seqhand.cli import main
from seqhand.config import load_config
from seqhand.data import STB, FreiHAND, palm_from_joints
from seqhand.data.types import project
from seqhand.models import build_model
from seqhand.training.batch import collate
from seqhand.training.checkpoint import save_model
from seqhand.training.real import (
    FinetuneError,
    RealTrainItems,
    finetune,
    parse_datasets,
    split_indices,
    training_crop,
)

STEPS = ["--set", "data.batch_size=2", "--set", "data.num_workers=0",
         "--set", "data.val_sequences=4", "--set", "trainer.log_every_n_steps=1"]  # fmt: skip


def state(path) -> dict[str, torch.Tensor]:
    return torch.load(path, map_location="cpu", weights_only=False)["state_dict"]


def recurrent_keys(sd: dict) -> list[str]:
    return [k for k in sd if k.startswith("convlstm.")]


@pytest.fixture(scope="module")
def pretrained(tmp_path_factory):
    """A FreiHAND fixture (4 annotations x 4 versions), an STB train fixture and a
    "pre-trained" tiny model at 64 px."""
    root = tmp_path_factory.mktemp("ft")
    write_freihand(root / "FreiHAND", n=4, n_eval=1)
    stb_train = tuple(f"B{i}{k}" for i in range(2, 7) for k in ("Counting", "Random"))
    write_stb(root / "STB", sequences=stb_train, n_frames=1)
    torch.manual_seed(0)
    ckpt = save_model(build_model("tiny"), root / "pre.pt", image_size=64)
    return root, ckpt


@pytest.fixture(scope="module")
def run_train_c(pretrained):
    """``seqhand finetune`` (Train_C, the default), 4 steps, a checkpoint every 2 steps."""
    root, ckpt = pretrained
    out = root / "run_c"
    rc = main(["finetune", "--config", "tiny", *STEPS, "--set", "trainer.max_steps=4",
               "--set", "trainer.ckpt_every_n_steps=2", "--set", "trainer.val_every_n_steps=4",
               "--out", str(out), "--checkpoint", str(ckpt), "--dataset", "freihand",
               "--data-root", str(root / "FreiHAND"), "--no-progress"])  # fmt: skip
    assert rc == 0
    return out


# --------------------------------------------------------------------------------------------
# Runs
# --------------------------------------------------------------------------------------------
def test_train_c_freezes_convlstm_bit_for_bit(pretrained, run_train_c):
    _, ckpt = pretrained
    out = run_train_c
    for f in ("model.pt", "config.yaml", "summary.json", "checkpoints/last.ckpt",
              "checkpoints/step0000002.ckpt", "checkpoints/step0000004.ckpt"):  # fmt: skip
        assert (out / f).is_file(), f
    cfg = yaml.safe_load((out / "config.yaml").read_text())
    assert cfg["finetune"]["freeze_recurrent"] is True
    assert cfg["finetune"]["dataset"] == "freihand"
    assert cfg["model"]["name"] == "tiny" and cfg["model"]["image_size"] == 64
    before, after = state(ckpt), state(out / "model.pt")
    rec = recurrent_keys(before)
    assert rec, "the tiny model has a ConvLSTM"
    for k in rec:
        assert torch.equal(before[k], after[k]), f"{k} changed under Train_C"
    params = dict(build_model("tiny").named_parameters())
    changed = [k for k in params if k not in rec and not torch.equal(before[k], after[k])]
    unchanged = [k for k in params if k not in rec and k not in changed]
    assert not unchanged, f"parameters outside the ConvLSTM did not learn: {unchanged}"


def test_resume_continues_exactly(pretrained, run_train_c, tmp_path):
    """Restarting from the step-2 checkpoint of a 4-step run ends on the same weights, bit for
    bit (model, optimiser, scheduler, step and data position are all restored)."""
    root, ckpt = pretrained
    out = tmp_path / "resumed"
    out.mkdir()
    shutil.copy(run_train_c / "checkpoints" / "step0000002.ckpt", out / "step2.ckpt")
    rc = main(["finetune", "--config", "tiny", *STEPS, "--set", "trainer.max_steps=4",
               "--set", "trainer.ckpt_every_n_steps=2", "--set", "trainer.val_every_n_steps=4",
               "--out", str(out), "--checkpoint", str(ckpt), "--dataset", "freihand",
               "--data-root", str(root / "FreiHAND"), "--no-progress",
               "--resume", str(out / "step2.ckpt")])  # fmt: skip
    assert rc == 0
    a, b = state(run_train_c / "model.pt"), state(out / "model.pt")
    assert a.keys() == b.keys()
    assert [k for k in a if not torch.equal(a[k], b[k])] == []
    mid = state(run_train_c / "checkpoints" / "step0000002.ckpt")
    assert not torch.equal(mid["model.head.out.weight"], a["head.out.weight"])  # steps 3-4 ran


def test_train_mode_on_freihand_plus_stb_updates_convlstm(pretrained, tmp_path):
    root, ckpt = pretrained
    cfg = load_config("tiny", ["data.batch_size=2", "data.num_workers=0", "data.val_sequences=2",
                               "trainer.max_steps=2", "trainer.val_every_n_steps=2",
                               "trainer.ckpt_every_n_steps=2"])  # fmt: skip
    summary = finetune(cfg, tmp_path / "run", checkpoint=ckpt, dataset="freihand+stb",
                       data_root=root, freeze_recurrent=False, progress=False)  # fmt: skip
    assert summary["steps"] == 2
    before, after = state(ckpt), state(tmp_path / "run" / "model.pt")
    rec = recurrent_keys(before)
    assert all(not torch.equal(before[k], after[k]) for k in rec)
    saved = yaml.safe_load((tmp_path / "run" / "config.yaml").read_text())
    assert saved["finetune"]["freeze_recurrent"] is False
    assert saved["finetune"]["dataset"] == "freihand+stb"


def test_frozen_recurrent_layer_is_not_in_the_optimiser():
    from seqhand.training.module import SeqHandModule

    cfg = load_config("tiny", ["model.name=tiny", "model.image_size=64",
                               "optim.weight_decay=0.1"])  # fmt: skip
    for freeze in (True, False):
        cfg["finetune"] = {"freeze_recurrent": freeze}
        module = SeqHandModule(cfg)
        opt = module.configure_optimizers()["optimizer"]
        in_opt = {id(p) for g in opt.param_groups for p in g["params"]}
        rec = {id(p) for p in module.model.recurrent_parameters()}
        others = {id(p) for p in module.model.parameters()} - rec
        assert others <= in_opt
        assert (rec & in_opt == set()) if freeze else (rec <= in_opt)
        assert all(p.requires_grad != freeze for p in module.model.recurrent_parameters())


# --------------------------------------------------------------------------------------------
# Items
# --------------------------------------------------------------------------------------------
def nearest(px, candidates) -> int:
    return int(np.argmin(((candidates.astype(int) - np.asarray(px, int)) ** 2).sum(1)))


def test_repositioned_crops_keep_joints_on_their_dots(pretrained):
    root, _ = pretrained
    ds = FreiHAND(root / "FreiHAND")
    size = 224
    items = RealTrainItems(ds, size, rng_seed=3, reposition=True)
    greys = np.array([[40 * (k + 1)] * 3 for k in range(4)])
    centres, checked = [], 0
    for i in range(len(items)):
        p = items.prepare(i)
        j2 = p["joints2d"]
        assert p["joints2d_valid"].all()  # the joint box stays inside the crop
        assert (j2 >= 0).all() and (j2 <= size - 1).all()
        centres.append((j2.min(0) + j2.max(0)) / 2)
        cands = np.concatenate([PALETTE, greys, [[round(float(p["sample"].image.mean()))] * 3]])
        for j in range(21):
            d = np.linalg.norm(j2 - j2[j], axis=1)
            if np.sort(d)[1] < 7.0:
                continue
            u, v = np.round(j2[j]).astype(int)
            assert nearest(p["image"][v, u], cands) == j, f"item {i} joint {j}"
            checked += 1
        # the same draw every time (a pure function of seed and index)
        np.testing.assert_array_equal(items.prepare(i)["image"], p["image"])
    assert checked > 200
    centres = np.array(centres)
    assert centres.std(0).min() > 5.0  # hands land at various places...
    assert np.abs(centres - (size - 1) / 2).max() > 15.0  # ...not only in the middle
    # without re-positioning, the joints' box is centred and 1/2.2 of the crop
    fixed = RealTrainItems(ds, size, reposition=False).prepare(0)["joints2d"]
    np.testing.assert_allclose((fixed.min(0) + fixed.max(0)) / 2, (size - 1) / 2, atol=1e-9)
    assert (fixed.max(0) - fixed.min(0)).max() == pytest.approx(size / 2.2)
    # another seed moves the hands elsewhere
    other = RealTrainItems(ds, size, rng_seed=4).prepare(0)["joints2d"]
    assert np.abs(other - items.prepare(0)["joints2d"]).max() > 1.0


def test_training_crop_ranges():
    from seqhand.geometry.crop import Box

    box = Box(100.0, 50.0, 180.0, 90.0)  # 80 x 40
    rng = np.random.default_rng(0)
    for _ in range(200):
        c = training_crop(box, 64, rng, shift=1.0, scale_range=(0.9, 1.1))
        assert 0.9 * 176 <= c.side <= 1.1 * 176
        corners = c.to_crop(np.array([[box.x0, box.y0], [box.x1, box.y1]]))
        assert (corners >= -0.5 - 1e-9).all() and (corners <= 63.5 + 1e-9).all()


def test_items_tensors_and_mixed_keys(pretrained):
    root, _ = pretrained
    fh = FreiHAND(root / "FreiHAND", load_verts=True)
    st = STB(root / "STB", "train")
    a = RealTrainItems(fh, 64, with_mask=True, num_vertices=778)
    b = RealTrainItems(st, 64, reposition=False, with_mask=True, num_vertices=778)
    ia, ib = a[0], b[0]
    assert ia.keys() == ib.keys()
    assert ia["frames"].shape == (1, 3, 64, 64) and ia["frames"].dtype == torch.float32
    assert ia["joints2d"].shape == (1, 21, 2) and ia["joints3d"].shape == (1, 21, 3)
    assert ia["vertices3d"].shape == (1, 778, 3) and bool(ia["vertices3d_valid"])
    assert not bool(ib["vertices3d_valid"]) and not bool(ib["mask_valid"])
    assert bool(ia["mask_valid"]) and ia["mask"].shape == (1, 64, 64)
    assert (ia["mask_dist"][ia["mask"]] == 0).all() and (ia["mask_dist"][~ia["mask"]] > 0).all()
    assert "params" not in ia  # Eq. 15 has no camera term
    batch = collate([ia, ib])
    assert batch["frames"].shape == (2, 1, 3, 64, 64)
    # the 3D joints are the loader's, in metres
    np.testing.assert_allclose(ia["joints3d"][0].numpy(), fh[0].joints3d, atol=1e-6)


def test_stb_palm_becomes_a_wrist(pretrained):
    root, _ = pretrained
    st = STB(root / "STB", "train")
    items = RealTrainItems(st, 64, reposition=False)
    for i in range(3):
        s = st[i]
        p = items.prepare(i)
        j3 = p["joints3d"]
        # the item's wrist is the one whose STB palm is the label's palm
        np.testing.assert_allclose(palm_from_joints(j3), s.joints3d[0], atol=1e-12)
        np.testing.assert_allclose(j3[1:], s.joints3d[1:], atol=0)
        assert p["joints3d_valid"].all()
        # its 2D point is the wrist's projection, mapped into the crop
        np.testing.assert_allclose(p["joints2d"][0], p["crop"].to_crop(project(j3[:1], s.K))[0])
        np.testing.assert_allclose(p["joints2d"][1:], p["crop"].to_crop(s.joints2d[1:]))


def test_split_keeps_groups_together(pretrained):
    root, _ = pretrained
    fh = FreiHAND(root / "FreiHAND")
    tr, va = split_indices(fh, 0.25, seed=0)
    assert len(va) == 4 and len(tr) == 12
    assert set(tr).isdisjoint(va) and set(tr) | set(va) == set(range(16))
    assert len({i % 4 for i in va}) == 1  # the four versions of one annotation
    assert {i % 4 for i in tr}.isdisjoint({i % 4 for i in va})
    assert np.array_equal(split_indices(fh, 0.25, seed=0)[1], va)
    st = STB(root / "STB", "train")
    tr, va = split_indices(st, 0.02, block=1)
    assert len(va) == 1 and len(tr) == len(st) - 1


def test_dataset_names():
    assert parse_datasets("freihand+stb") == ["freihand", "stb"]
    assert parse_datasets("RHD") == ["rhd"]
    for bad in ("", "egodexter", "freihand+freihand", "freihand+nope"):
        with pytest.raises(FinetuneError):
            parse_datasets(bad)


def test_rhd_items_and_finetune_sets(pretrained, tmp_path):
    from data_fixtures import write_rhd
    from seqhand.training.real import FINETUNE_DEFAULTS, build_finetune_sets

    write_rhd(tmp_path / "RHD_published_v2")
    (tmp_path / "RHD_published_v2" / "evaluation").mkdir()
    items, val = build_finetune_sets(["rhd"], tmp_path / "RHD_published_v2",
                                     FINETUNE_DEFAULTS, 64, 1307)  # fmt: skip
    assert len(items) + len(val) == 3 and not items.reposition  # only FreiHAND moves
    it = items[0]
    assert it["mask"].shape == (1, 64, 64) and bool(it["mask_valid"])
    assert "vertices3d" not in it
    # the paper's mix: FreiHAND re-positioned, STB centred, one key set, shuffled validation
    root, _ = pretrained
    tr, va = build_finetune_sets(["freihand", "stb"], root, FINETUNE_DEFAULTS, 64, 1307)
    fh, st = tr.datasets
    assert fh.reposition and not st.reposition
    assert len(tr) + len(va) == 16 + 10
    keys = {frozenset(tr[i].keys()) for i in (0, len(tr) - 1)}
    assert len(keys) == 1 and "mask_dist" in next(iter(keys))
    names = {va.dataset.datasets[0].dataset.name, va.dataset.datasets[1].dataset.name}
    assert names == {"freihand", "stb"}
