"""Synthetic data: pose banks, pose flows (Eq. 5-7), nearest-neighbour search, the joints->theta
encoder, appearance, the rasteriser and the sequence composer.

Submodules are imported on demand (``from seqhand.synth.flow import generate_flows``) so that
importing one part never pays for the others.
"""
