"""seqhand: SeqHAND (ECCV 2020) as software - sequential synthetic hand data, the recurrent
3D hand pose and shape estimator, benchmarks and video inference."""

__version__ = "0.1.0"
