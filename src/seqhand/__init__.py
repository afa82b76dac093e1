"""seqhand: SeqHAND (ECCV 2020) as software - sequential synthetic hand data, the recurrent
3D hand pose and shape estimator, benchmarks and video inference."""

__version__ = "0.1.0"


def infer(inputs, checkpoint, out=None, **options):
    """Estimate the 3D hands in a video, a folder of frames or of videos (or a list of them).

    ``seqhand.infer("clip.mp4", "model.pt", box=(410, 220, 530, 360))`` returns an
    :class:`~seqhand.inference.pipeline.InferenceResult` (a list for several inputs):
    ``.hands[id]["joints_cam"]`` ``(N, 21, 3)`` metres, ``.summary``, ``.outputs``. See
    :func:`seqhand.inference.api.infer` for the options and docs/inference.md.
    """
    from seqhand.inference.api import infer as _infer

    return _infer(inputs, checkpoint, out, **options)
