"""``seqhand infer`` end to end: folders and videos in, results and videos out; bad input."""

from __future__ import annotations

import json
import sys

import numpy as np
import pytest
import torch
from PIL import Image

from infer_fixtures import hand_layer, moving_offsets, paste, render_crops, sequence_params
from seqhand.cli import main
from seqhand.geometry.crop import Box, full_frame_box
from seqhand.inference.localize import write_boxes
from seqhand.inference.pipeline import load_results
from seqhand.inference.predictor import Predictor
from seqhand.inference.video import read_video, write_video
from seqhand.models import build_model
from seqhand.training.checkpoint import load_model, save_model

pytest.importorskip("av")

S, H, W, T = 64, 120, 160, 5


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    root = tmp_path_factory.mktemp("infer")
    torch.manual_seed(0)
    model = build_model("tiny")
    with torch.no_grad():
        model.head.out.weight.normal_(0, 0.05)
    ck = save_model(model.eval(), root / "tiny.pt", image_size=S)
    crops = render_crops(sequence_params(T, S, seed=4), S)["frames"]
    off = moving_offsets(T, S, H, W)
    frames = paste(crops, H, W, off)
    base = full_frame_box(S, S)
    boxes = {k: Box(base.x0 + x, base.y0 + y, base.x1 + x, base.y1 + y)
             for k, (x, y) in enumerate(off)}  # fmt: skip
    folder = root / "frames"
    folder.mkdir()
    for k, f in enumerate(frames):  # names sort naturally, not lexically
        Image.fromarray(f).save(folder / f"frame{k * 5}.png")
    box_file = write_boxes(root / "boxes.csv", boxes)
    return {"root": root, "ckpt": ck, "frames": frames, "boxes": boxes, "folder": folder,
            "box_file": box_file}  # fmt: skip


def hand0(out):
    return load_results(out)["hands"][0]


def run(args, capsys):
    code = main(["infer", *[str(a) for a in args], "--no-progress"])
    cap = capsys.readouterr()
    return code, cap.out, cap.err


def test_folder_with_boxes_end_to_end(setup, tmp_path, capsys):
    out = tmp_path / "out"
    code, text, err = run([setup["folder"], "--checkpoint", setup["ckpt"], "--out", out,
                           "--boxes", setup["box_file"]], capsys)  # fmt: skip
    assert code == 0, err
    names = sorted(p.name for p in out.iterdir())
    assert names == ["overlay.mp4", "results.jsonl", "results.npz", "side_by_side.mp4",
                     "summary.json"]  # fmt: skip
    top = load_results(out)
    res = top["hands"][0]
    assert list(top["hands"]) == [0]
    # the same as the predictor run directly on the frames
    model, _ = load_model(setup["ckpt"])
    pred = Predictor(model, hand_layer(), image_size=S)
    direct = list(pred.run(setup["frames"], [setup["boxes"][k] for k in range(T)]))
    np.testing.assert_allclose(res["joints2d"], np.stack([o.joints2d for o in direct]), atol=1e-3)
    np.testing.assert_allclose(res["params"], np.stack([o.params for o in direct]), atol=1e-5)
    assert res["found"].all()
    assert res["vertices3d"].shape == (T, hand_layer().num_vertices, 3)
    np.testing.assert_array_equal(top["faces"], pred.faces)
    lines = (out / "results.jsonl").read_text().splitlines()
    assert [json.loads(x)["frame"] for x in lines] == list(range(T))
    assert all(json.loads(x)["hands"][0]["id"] == 0 for x in lines)
    summ = json.loads((out / "summary.json").read_text())
    assert summ["complete"] and summ["frames"] == T and summ["frames_with_hand"] == T
    video, fps = read_video(out / "overlay.mp4")
    assert video.shape == (T, H, W, 3) and fps == pytest.approx(30)
    sbs, _ = read_video(out / "side_by_side.mp4")
    assert sbs.shape == (T, H, W + H, 3)
    # the overlay differs from the frame where the hand is, and only around it
    diff = np.abs(video.astype(int) - setup["frames"].astype(int)).sum(-1)
    b = setup["boxes"][2]
    assert diff[2, int(b.y0) : int(b.y1), int(b.x0) : int(b.x1)].mean() > 20


def test_video_input_and_frames_without_a_hand(setup, tmp_path, capsys):
    vid = write_video(tmp_path / "in.mp4", setup["frames"], fps=24, crf=12)
    boxes = dict(setup["boxes"])
    boxes[2] = None  # explicitly no hand
    del boxes[4]  # not in the file: no hand either
    bf = write_boxes(tmp_path / "b.csv", boxes)
    out = tmp_path / "out"
    code, text, _ = run([vid, "--checkpoint", setup["ckpt"], "--out", out, "--boxes", bf,
                         "--no-side-view"], capsys)  # fmt: skip
    assert code == 0
    assert "no hand in 2 frames: 2, 4" in text
    top = load_results(out)
    # the hand is lost at frame 2; found again at frame 3 it is a new track (id 1)
    assert list(top["hands"]) == [0, 1]
    h0, h1 = top["hands"][0], top["hands"][1]
    assert h0["found"].tolist() == [True, True, False, False, False]
    assert h1["found"].tolist() == [False, False, False, True, False]
    assert np.isnan(h0["joints3d"][2]).all() and np.isfinite(h1["joints3d"][3]).all()
    assert h0["reset"].tolist()[:3] == [True, False, True] and h1["reset"][3]
    assert np.isfinite(h0["confidence"]).all() and h0["confidence"][2] == 0
    assert float(top["input_fps"]) == pytest.approx(24)
    summ = json.loads((out / "summary.json").read_text())
    assert summ["no_hand_frames"] == [2, 4] and summ["complete"]
    assert not (out / "side_by_side.mp4").exists()
    assert read_video(out / "overlay.mp4")[0].shape[0] == T


def test_truncated_video_writes_what_it_could(setup, tmp_path, capsys):
    frames = np.concatenate([setup["frames"]] * 4)  # 20 frames
    boxes = {k: setup["boxes"][k % T] for k in range(20)}
    bf = write_boxes(tmp_path / "b.csv", boxes)
    vid = write_video(tmp_path / "in.mp4", frames, crf=12)
    data = vid.read_bytes()
    vid.write_bytes(data[: len(data) * 6 // 10])
    out = tmp_path / "out"
    code, text, _ = run([vid, "--checkpoint", setup["ckpt"], "--out", out, "--boxes", bf,
                         "--no-video"], capsys)  # fmt: skip
    assert code == 1
    assert "truncated" in text and "complete = false" in text
    summ = json.loads((out / "summary.json").read_text())
    assert not summ["complete"] and 0 < summ["frames"] < 20
    assert len(hand0(out)["found"]) == summ["frames"]
    assert not list(out.glob("*.partial"))


def test_unreadable_video_empty_folder_and_missing_input(setup, tmp_path, capsys):
    bad = tmp_path / "bad.mp4"
    bad.write_bytes(b"\x00" * 100)
    out = tmp_path / "out"
    code, _, err = run([bad, "--checkpoint", setup["ckpt"], "--out", out, "--boxes",
                        setup["box_file"]], capsys)  # fmt: skip
    assert code == 2 and "unreadable video" in err and str(bad) in err
    assert not out.exists() or not any(out.iterdir())
    empty = tmp_path / "empty"
    empty.mkdir()
    code, _, err = run([empty, "--checkpoint", setup["ckpt"], "--out", out, "--boxes",
                        setup["box_file"]], capsys)  # fmt: skip
    assert code == 2 and "no frames" in err
    code, _, err = run([tmp_path / "nope.mp4", "--checkpoint", setup["ckpt"], "--out", out,
                        "--boxes", setup["box_file"]], capsys)  # fmt: skip
    assert code == 2 and "no such file" in err
    code, _, err = run(["--checkpoint", setup["ckpt"], "--out", out], capsys)
    assert code == 2 and "give the input" in err


def test_zero_frame_video(setup, tmp_path, capsys):
    import av

    path = tmp_path / "zero.mp4"
    with av.open(str(path), "w") as c:
        st = c.add_stream("libx264", rate=30)
        st.width, st.height, st.pix_fmt = 64, 64, "yuv420p"
        c.start_encoding()  # a header, no frame
    assert path.is_file()
    code, _, err = run([path, "--checkpoint", setup["ckpt"], "--out", tmp_path / "o", "--boxes",
                        setup["box_file"]], capsys)  # fmt: skip
    assert code == 2 and any(m in err for m in ("no frame", "no video stream", "unreadable"))
    assert str(path) in err


def test_unreadable_image_in_a_folder_is_recorded(setup, tmp_path, capsys):
    folder = tmp_path / "f"
    folder.mkdir()
    for k, f in enumerate(setup["frames"]):
        Image.fromarray(f).save(folder / f"{k:03d}.png")
    (folder / "002.png").write_bytes(b"broken")
    out = tmp_path / "out"
    code, text, _ = run([folder, "--checkpoint", setup["ckpt"], "--out", out, "--boxes",
                         setup["box_file"], "--no-video"], capsys)  # fmt: skip
    assert code == 0 and "002.png" in text
    summ = json.loads((out / "summary.json").read_text())
    assert summ["unreadable_frames"] == [2] and summ["frames"] == T
    res = hand0(out)
    assert res["found"].tolist() == [True, True, False, True, True]


def test_frames_of_another_size_still_make_a_video(setup, tmp_path, capsys):
    folder = tmp_path / "f"
    folder.mkdir()
    for k, f in enumerate(setup["frames"]):
        img = f if k != 3 else np.pad(f, ((0, 10), (0, 6), (0, 0)))
        Image.fromarray(img).save(folder / f"{k}.png")
    out = tmp_path / "out"
    code, _, err = run([folder, "--checkpoint", setup["ckpt"], "--out", out, "--boxes",
                        setup["box_file"], "--no-side-view"], capsys)  # fmt: skip
    assert code == 0, err
    assert read_video(out / "overlay.mp4")[0].shape == (T, H, W, 3)
    assert hand0(out)["found"].all()


def test_onnx_runtime_and_per_frame_flags(setup, tmp_path, capsys):
    pytest.importorskip("onnxruntime")
    outs = {}
    for name, extra in {"torch": [], "onnx": ["--runtime", "onnx"],
                        "pf": ["--per-frame"]}.items():  # fmt: skip
        out = tmp_path / name
        args = [setup["folder"], "--checkpoint", setup["ckpt"], "--out", out]
        code, text, err = run([*args, "--boxes", setup["box_file"], "--no-video", *extra], capsys)
        assert code == 0, err
        outs[name] = hand0(out)
    np.testing.assert_allclose(outs["onnx"]["params"], outs["torch"]["params"], atol=1e-4)
    assert outs["pf"]["reset"].all() and not outs["torch"]["reset"][1:].any()
    assert np.abs(outs["pf"]["params"][-1] - outs["torch"]["params"][-1]).max() > 1e-4
    summ = json.loads((tmp_path / "onnx" / "summary.json").read_text())
    assert summ["runtime"] == "onnx"


def test_tracking_from_one_box(setup, tmp_path, capsys):
    b = setup["boxes"][0]
    out = tmp_path / "out"
    code, _, err = run([setup["folder"], "--checkpoint", setup["ckpt"], "--out", out, "--box",
                        f"{b.x0},{b.y0},{b.x1},{b.y1}", "--no-video", "--min-confidence", "0"],
                       capsys)  # fmt: skip
    assert code == 0, err
    res = hand0(out)
    assert res["found"][0] and np.allclose(res["boxes"][0], b.as_array(), atol=1e-4)
    code, _, err = run([setup["folder"], "--checkpoint", setup["ckpt"], "--out", tmp_path / "o2",
                        "--box", "1,2,3"], capsys)  # fmt: skip
    assert code == 2 and "--box must be" in err
    # a box that misses the image is an error, not "0 hands"
    code, _, err = run([setup["folder"], "--checkpoint", setup["ckpt"], "--out", tmp_path / "o3",
                        "--box", "500,500,540,560"], capsys)  # fmt: skip
    assert code == 2 and "lies outside the first frame (160 x 120 pixels)" in err
    assert not (tmp_path / "o3" / "results.npz").exists()


def test_missing_checkpoint_is_reported_before_anything_starts(setup, tmp_path, capsys,
                                                                monkeypatch):  # fmt: skip
    import seqhand.inference.localize as loc

    def boom(*a, **k):
        raise AssertionError("the detector must not start")

    monkeypatch.setattr(loc, "MediaPipeDetector", boom)
    code, _, err = run([setup["folder"], "--checkpoint", tmp_path / "nope.pt", "--out",
                        tmp_path / "o", "--detector", "mediapipe"], capsys)  # fmt: skip
    assert code == 2 and "nope.pt: no such checkpoint file" in err
    assert not (tmp_path / "o").exists()


def test_earlier_outputs_are_never_silently_deleted(setup, tmp_path, capsys):
    out = tmp_path / "out"
    args = [setup["folder"], "--checkpoint", setup["ckpt"], "--out", out, "--boxes",
            setup["box_file"], "--no-side-view"]  # fmt: skip
    assert run(args, capsys)[0] == 0
    before = (out / "overlay.mp4").read_bytes()
    code, _, err = run([*args, "--no-video"], capsys)
    assert code == 2 and "earlier run" in err and "--overwrite" in err
    assert (out / "overlay.mp4").read_bytes() == before  # untouched
    code, text, err = run([*args, "--no-video", "--overwrite"], capsys)
    assert code == 0, err
    assert "removed overlay.mp4" in text and not (out / "overlay.mp4").exists()
    assert json.loads((out / "summary.json").read_text())["removed"] == ["overlay.mp4"]


def test_several_inputs_and_speed(setup, tmp_path, capsys):
    vids = tmp_path / "videos"
    vids.mkdir()
    for name in ("b_clip", "a_clip"):
        write_video(vids / f"{name}.mp4", setup["frames"], fps=24, crf=12)
    out = tmp_path / "out"
    code, text, err = run([vids, setup["folder"], "--checkpoint", setup["ckpt"], "--out", out,
                           "--boxes", setup["box_file"], "--no-video"], capsys)  # fmt: skip
    assert code == 0, err
    assert sorted(p.name for p in out.iterdir()) == ["a_clip", "b_clip", "frames"]
    for name in ("a_clip", "b_clip", "frames"):
        summ = json.loads((out / name / "summary.json").read_text())
        assert summ["frames"] == T and summ["processing_fps"] > 0 and summ["seconds"] > 0
        assert summ["input_fps"] == pytest.approx(24 if "clip" in name else 30)
    assert text.count("frames/s") == 3


def test_no_localisation_without_mediapipe_is_a_clear_error(setup, tmp_path, capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "mediapipe", None)  # as if not installed
    code, _, err = run([setup["folder"], "--checkpoint", setup["ckpt"], "--out", tmp_path],
                       capsys)  # fmt: skip
    assert code == 2 and "--boxes" in err and "seqhand[detector]" in err
    code, _, err = run([setup["folder"], "--checkpoint", setup["ckpt"], "--out", tmp_path,
                        "--detector", "mediapipe"], capsys)  # fmt: skip
    assert code == 2 and "seqhand[detector]" in err


class _Source:
    """A frame source that fails after ``n`` frames with ``exc``."""

    def __init__(self, frames, n, exc):
        self.name, self.fps, self.expected_frames = "test", 30.0, len(frames)
        self.problems, self.frames, self.n, self.exc = [], frames, n, exc

    @property
    def truncated(self):
        return False

    def __iter__(self):
        for k, f in enumerate(self.frames):
            if k == self.n:
                raise self.exc
            yield k, f


def _predictor(setup):
    from seqhand.inference.localize import GivenBoxes

    model, _ = load_model(setup["ckpt"])
    return Predictor(model, hand_layer(), image_size=S, box_source=GivenBoxes(setup["boxes"]))


def test_ctrl_c_keeps_the_processed_frames(setup, tmp_path):
    from seqhand.inference.pipeline import infer_video

    summ = infer_video(_Source(setup["frames"], 3, KeyboardInterrupt()), _predictor(setup),
                       tmp_path, progress=False).summary  # fmt: skip
    assert summ.interrupted and not summ.complete and summ.frames == 3
    assert len(hand0(tmp_path)["found"]) == 3
    assert read_video(tmp_path / "overlay.mp4")[0].shape[0] == 3
    assert not list(tmp_path.glob("*.partial"))


def test_a_crash_leaves_no_output_that_looks_complete(setup, tmp_path):
    from seqhand.inference.pipeline import infer_video

    with pytest.raises(RuntimeError, match="boom"):
        infer_video(_Source(setup["frames"], 2, RuntimeError("boom")), _predictor(setup),
                    tmp_path, progress=False)  # fmt: skip
    assert list(tmp_path.iterdir()) == []


def test_webcam_input(setup, tmp_path, capsys, monkeypatch):
    """--webcam N opens /dev/videoN with v4l2 (here: a stand-in that plays a video file)."""
    import av

    vid = write_video(tmp_path / "cam.mp4", setup["frames"], fps=24, crf=12)
    opened = {}
    real_open = av.open

    def fake_open(url, format=None, options=None, **kw):
        opened.update(url=url, format=format)
        return real_open(str(vid))

    monkeypatch.setattr(sys, "platform", "linux")
    monkeypatch.setattr(av, "open", fake_open)
    out = tmp_path / "out"
    code, _, err = run(["--webcam", "3", "--checkpoint", setup["ckpt"], "--out", out,
                        "--box", "{},{},{},{}".format(*setup["boxes"][0].as_array()),
                        "--no-video", "--min-confidence", "0"], capsys)  # fmt: skip
    assert code == 0, err
    assert opened == {"url": "/dev/video3", "format": "v4l2"}
    res = hand0(out)
    assert len(res["found"]) == T and res["found"].all()
    summ = json.loads((out / "summary.json").read_text())
    assert summ["input"] == "webcam:3" and summ["complete"]


def test_missing_webcam_is_a_clear_error(setup, tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(sys, "platform", "linux")
    code, _, err = run(["--webcam", "97", "--checkpoint", setup["ckpt"], "--out", tmp_path / "o",
                        "--box", "1,2,30,40"], capsys)  # fmt: skip
    assert code == 2 and "webcam 97" in err and "/dev/video97" in err
    assert not (tmp_path / "o" / "results.npz").exists()


def test_side_option_overrides_the_boxes_side(setup, tmp_path, capsys):
    boxes = {k: Box(*b.as_array(), side="left") for k, b in setup["boxes"].items()}
    bf = write_boxes(tmp_path / "b.csv", boxes)
    for side, left in (("right", False), (None, True)):
        out = tmp_path / f"out_{side}"
        extra = ["--side", side] if side else []
        code, _, err = run([setup["folder"], "--checkpoint", setup["ckpt"], "--out", out,
                            "--boxes", bf, "--no-video", *extra], capsys)  # fmt: skip
        assert code == 0, err
        assert (hand0(out)["left"] == left).all()
    code, _, err = run([setup["folder"], "--checkpoint", setup["ckpt"], "--out", tmp_path / "x",
                        "--box", "1,2,30,40", "--redetect", "-1"], capsys)  # fmt: skip
    assert code == 2 and "--redetect must be >= 0" in err


def test_python_one_liner(setup, tmp_path):
    import seqhand

    res = seqhand.infer(setup["folder"], setup["ckpt"], boxes=setup["box_file"])
    assert res.out_dir is None and not any(tmp_path.iterdir())  # nothing written
    assert res.hands[0]["found"].all() and res.hands[0]["joints_cam"].shape == (T, 21, 3)
    assert res.summary.frames == T and res.summary.processing_fps > 0
    assert res.summary.camera["assumed"]  # 60 degrees, said so
    many = seqhand.infer([setup["folder"], setup["folder"]], setup["ckpt"], tmp_path / "o",
                         boxes=setup["box_file"], videos=False)  # fmt: skip
    assert [r.out_dir.name for r in many] == ["frames", "frames-2"]
    np.testing.assert_allclose(many[0].hands[0]["params"], res.hands[0]["params"], atol=1e-5)
    from seqhand.errors import SeqhandError

    with pytest.raises(SeqhandError, match="earlier run"):
        seqhand.infer(setup["folder"], setup["ckpt"], tmp_path / "o" / "frames",
                      boxes=setup["box_file"])  # fmt: skip
