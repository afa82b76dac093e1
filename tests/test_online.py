"""``data.source: online``: sequences composed on the fly equal the written dataset's."""

from __future__ import annotations

import numpy as np

from seqhand.data.generate import GenerateConfig, generate
from seqhand.data.online import OnlineSequences
from seqhand.data.seqhand_dataset import read_sequences


def _cfg() -> GenerateConfig:
    return GenerateConfig(num_train=4, num_test=2, frames=3, image_size=48, shard_size=2,
                          bank_size=3000, theta_source="bank", image_format="png",
                          num_templates=3)  # fmt: skip


def test_online_sample_equals_the_generated_one(tmp_path):
    cfg = _cfg()
    generate(cfg, tmp_path / "ds", progress=False)
    written = read_sequences(tmp_path / "ds", "train")
    online = OnlineSequences(cfg, "train", cache_dir=tmp_path / "ds")
    assert len(online) == 4
    for k in (3, 0, 2):  # any order: each is a function of its index
        s = online[k]
        np.testing.assert_array_equal(s["frames"], written[k]["frames"])  # png: lossless
        np.testing.assert_array_equal(s["masks"], written[k]["masks"])
        for key, v in written[k]["ann"].items():
            np.testing.assert_array_equal(s["ann"][key], v, err_msg=key)
    test = OnlineSequences(cfg, "test", cache_dir=tmp_path / "ds")
    np.testing.assert_array_equal(test[1]["frames"], read_sequences(tmp_path / "ds")[1]["frames"])


def test_online_training_runs(tmp_path):
    from seqhand.config import load_config
    from seqhand.training.run import train

    cfg = load_config("tiny", ["data.source=online", "data.root=null", "model.image_size=32",
                               "trainer.max_steps=2", "trainer.val_every_n_steps=2",
                               "data.batch_size=2", "data.num_workers=0", "data.val_sequences=2"])  # fmt: skip
    cfg["data"]["generate"] = {"preset": "demo", "frames": 2, "image_size": 32, "bank_size": 2000,
                               "theta_source": "bank", "num_templates": 2}  # fmt: skip
    summary = train(cfg, tmp_path / "run", progress=False)
    assert summary["steps"] == 2 and (tmp_path / "run" / "model.pt").is_file()
    assert np.isfinite(summary["metrics"]["val/epe3d_mm"])
