"""Frames in and videos out: video files and webcams (PyAV), folders of images.

:func:`open_frames` turns a user's input into a :class:`FrameSource`: an iterable of
``(index, frame)`` with ``frame`` an ``(H, W, 3)`` uint8 RGB array, or ``None`` for a frame that
could not be read (a broken image in a folder). Problems that end a video early (a truncated or
corrupt file) do not raise: the frames decoded so far are yielded and the problem is recorded in
``source.problems``, so a caller can still write what it could process. Inputs that give no
frame at all raise :class:`VideoInputError`.

:class:`VideoWriter` writes H.264 MP4 (``libx264``, yuv420p, frames padded to even sizes).
"""

from __future__ import annotations

import re
import sys
from collections.abc import Iterator
from fractions import Fraction
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

from seqhand.errors import MissingExtraError, SeqhandError

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp")
DEFAULT_FPS = 30.0


class VideoInputError(SeqhandError):
    """The input cannot be opened, or gives no frame."""


def _import_av():
    try:
        import av
    except ImportError:
        raise MissingExtraError("av", "video", "reading and writing videos") from None
    return av


def natural_key(name: str) -> list:
    """Sort key that puts ``frame2.png`` before ``frame10.png``."""
    return [int(t) if t.isdigit() else t.lower() for t in re.split(r"(\d+)", name)]


class FrameSource:
    """An iterable of ``(index, frame | None)`` with what is known about the input.

    Attributes:
        name: the input as given (path or ``webcam:N``).
        fps: frames per second (a folder: the given/default rate).
        expected_frames: the number of frames the input announces (``None`` if unknown).
        problems: messages about frames that could not be read, filled while iterating.
        frames_read: frames yielded so far (including unreadable ones, as ``None``).
    """

    def __init__(self, name: str, fps: float, expected_frames: int | None) -> None:
        self.name = name
        self.fps = float(fps)
        self.expected_frames = expected_frames
        self.problems: list[str] = []
        self.frames_read = 0

    def __iter__(self) -> Iterator[tuple[int, np.ndarray | None]]:  # pragma: no cover
        raise NotImplementedError

    @property
    def truncated(self) -> bool:
        """The input ended before the frame count it announced, or with a decoding error."""
        return any(p.startswith("truncated") for p in self.problems)


class FolderSource(FrameSource):
    """The images of a folder in natural order (``frame2`` before ``frame10``)."""

    def __init__(self, folder: Path, fps: float = DEFAULT_FPS) -> None:
        files = sorted(
            (p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file()),
            key=lambda p: natural_key(p.name),
        )
        if not files:
            raise VideoInputError(
                f"{folder}: no frames (expected image files {', '.join(IMAGE_SUFFIXES)})"
            )
        super().__init__(str(folder), fps, len(files))
        self.files = files

    def __iter__(self) -> Iterator[tuple[int, np.ndarray | None]]:
        for k, path in enumerate(self.files):
            try:
                with Image.open(path) as im:
                    frame = rgb8(im)
            except (OSError, UnidentifiedImageError, ValueError) as e:
                self.problems.append(f"frame {k} ({path.name}): unreadable image ({e})")
                frame = None
            self.frames_read += 1
            yield k, frame


def rgb8(im: Image.Image) -> np.ndarray:
    """An image as ``(H, W, 3)`` uint8 RGB, scaling deep images by their range instead of
    clipping them (PIL's ``convert("RGB")`` turns 16-bit frames white and [0, 1] floats black):
    16-bit integers / 257, integers above 255 by the 16-bit range, floats in [0, 1] x 255."""
    if im.mode in ("I;16", "I;16B", "I;16L", "I;16N", "I", "F"):
        a = np.asarray(im).astype(np.float64)
        if im.mode == "F":
            a = np.nan_to_num(a, nan=0.0, posinf=255.0, neginf=0.0)
            if a.size and a.min() >= 0.0 and a.max() <= 1.0:
                a = a * 255.0
        elif im.mode.startswith("I;16") or (a.size and a.max() > 255):
            a = a / 257.0
        g = np.clip(np.round(a), 0, 255).astype(np.uint8)
        return np.repeat(g[..., None], 3, axis=-1)
    return np.asarray(im.convert("RGB"))


class VideoSource(FrameSource):
    """The frames of a video file or a capture device, decoded with PyAV."""

    def __init__(self, name: str, container, stream) -> None:
        rate = stream.average_rate or stream.guessed_rate or DEFAULT_FPS
        expected = int(stream.frames) if stream.frames else None
        super().__init__(name, float(rate), expected)
        self._container = container
        self._stream = stream

    def __iter__(self) -> Iterator[tuple[int, np.ndarray | None]]:
        av = _import_av()
        k = 0
        try:
            for frame in self._container.decode(self._stream):
                img = frame.to_ndarray(format="rgb24")
                self.frames_read += 1
                yield k, img
                k += 1
        except (av.error.FFmpegError, OSError, ValueError) as e:
            self.problems.append(f"truncated: decoding stopped after {k} frames ({e})")
        finally:
            self._container.close()
        if not self.problems and self.expected_frames and k < self.expected_frames:
            self.problems.append(
                f"truncated: the video announces {self.expected_frames} frames, only {k} "
                "could be decoded"
            )
        if k == 0 and not self.problems:
            self.problems.append("the video has no frames")


def open_video(path: str | Path) -> VideoSource:
    """Open a video file (any container/codec FFmpeg reads).

    Raises:
        VideoInputError: missing or unreadable file, or no video stream.
    """
    av = _import_av()
    path = Path(path)
    if not path.is_file():
        raise VideoInputError(f"{path}: no such video file")
    try:
        container = av.open(str(path), mode="r")
    except (av.error.FFmpegError, OSError, ValueError) as e:
        raise VideoInputError(f"{path}: unreadable video ({e})") from None
    if not container.streams.video:
        container.close()
        raise VideoInputError(f"{path}: the file has no video stream")
    stream = container.streams.video[0]
    stream.thread_type = "AUTO"
    return VideoSource(str(path), container, stream)


def open_webcam(index: int, size: tuple[int, int] | None = None, fps: float | None = None):
    """Open capture device ``index`` (Linux: ``/dev/videoN`` via v4l2; macOS: avfoundation;
    Windows: dshow needs a device name, given as ``index``)."""
    av = _import_av()
    opts = {}
    if size:
        opts["video_size"] = f"{size[0]}x{size[1]}"
    if fps:
        opts["framerate"] = str(fps)
    if sys.platform.startswith("linux"):
        url, fmt = f"/dev/video{int(index)}", "v4l2"
    elif sys.platform == "darwin":
        url, fmt = str(int(index)), "avfoundation"
    else:
        url, fmt = f"video={index}", "dshow"
    try:
        container = av.open(url, format=fmt, options=opts)
    except (av.error.FFmpegError, OSError, ValueError) as e:
        raise VideoInputError(f"webcam {index} ({fmt} {url}): cannot open ({e})") from None
    if not container.streams.video:
        container.close()
        raise VideoInputError(f"webcam {index}: no video stream")
    src = VideoSource(f"webcam:{index}", container, container.streams.video[0])
    src.expected_frames = None  # live: no announced length
    return src


def open_frames(
    input: str | Path | None = None, *, webcam: int | None = None, fps: float | None = None
) -> FrameSource:
    """A :class:`FrameSource` for a video file, a folder of frames, or a webcam.

    Args:
        input: a video file or a folder of images (ignored when ``webcam`` is given).
        webcam: capture device number.
        fps: frame rate of a folder of frames (default 30); requested rate for a webcam.
    """
    if webcam is not None:
        return open_webcam(webcam, fps=fps)
    if input is None:
        raise VideoInputError("no input given: a video file, a folder of frames, or a webcam")
    path = Path(input)
    if path.is_dir():
        return FolderSource(path, fps or DEFAULT_FPS)
    if not path.exists():
        raise VideoInputError(f"{path}: no such file or folder")
    return open_video(path)


class VideoWriter:
    """Write RGB frames to an H.264 MP4 (``libx264``; MPEG-4 part 2 if x264 is missing).

    Frames must all have the first frame's size; odd sizes are padded by one black row/column
    (yuv420p needs even sizes). Use as a context manager or call :meth:`close`.

    Args:
        path: output file; the container comes from ``container`` (default: ``"mp4"``), so a
            temporary name such as ``overlay.mp4.partial`` works.
        fps: frame rate.
        crf: x264 quality (lower = better, 18-23 typical).
    """

    def __init__(
        self, path: str | Path, fps: float = DEFAULT_FPS, crf: int = 20, container: str = "mp4"
    ) -> None:
        self.path = Path(path)
        self.fps = Fraction(float(fps)).limit_denominator(1001)
        self.crf = int(crf)
        self.container_format = container
        self._container = None
        self._stream = None
        self._size: tuple[int, int] | None = None
        self.frames = 0

    def _open(self, h: int, w: int) -> None:
        av = _import_av()
        opts = {"movflags": "+faststart"} if self.container_format in ("mp4", "mov") else {}
        self._container = av.open(
            str(self.path), mode="w", format=self.container_format, options=opts
        )
        codec = "libx264" if "libx264" in av.codecs_available else "mpeg4"
        self._stream = self._container.add_stream(codec, rate=self.fps)
        self._stream.width, self._stream.height = w + (w % 2), h + (h % 2)
        self._stream.pix_fmt = "yuv420p"
        if codec == "libx264":
            self._stream.options = {"crf": str(self.crf), "preset": "veryfast"}
        self._size = (h, w)

    def write(self, frame: np.ndarray) -> None:
        """Append one ``(H, W, 3)`` uint8 RGB frame."""
        av = _import_av()
        img = np.asarray(frame, dtype=np.uint8)
        if img.ndim != 3 or img.shape[2] != 3:
            raise ValueError(f"frames must be (H, W, 3) uint8 RGB, got {img.shape}")
        if self._container is None:
            self._open(*img.shape[:2])
        if img.shape[:2] != self._size:
            raise ValueError(f"frame size {img.shape[:2]} differs from the first {self._size}")
        h, w = img.shape[:2]
        if h % 2 or w % 2:
            img = np.pad(img, ((0, h % 2), (0, w % 2), (0, 0)))
        vf = av.VideoFrame.from_ndarray(np.ascontiguousarray(img), format="rgb24")
        for packet in self._stream.encode(vf):
            self._container.mux(packet)
        self.frames += 1

    def close(self) -> None:
        if self._container is not None:
            for packet in self._stream.encode():
                self._container.mux(packet)
            self._container.close()
            self._container = None

    def __enter__(self) -> VideoWriter:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def write_video(path: str | Path, frames, fps: float = DEFAULT_FPS, crf: int = 20) -> Path:
    """Write an iterable of RGB frames to ``path`` (H.264 MP4)."""
    with VideoWriter(path, fps, crf) as w:
        for f in frames:
            w.write(f)
    return Path(path)


def read_video(path: str | Path) -> tuple[np.ndarray, float]:
    """All frames of a video as ``(T, H, W, 3)`` uint8 and its frame rate (small videos)."""
    src = open_video(path)
    frames = [f for _, f in src]
    if src.problems:
        raise VideoInputError(f"{path}: {'; '.join(src.problems)}")
    return np.stack(frames), src.fps
