"""Rotations, the weak-perspective camera and alignment."""

from seqhand.geometry.camera import weak_perspective_project
from seqhand.geometry.rotations import axis_angle_to_matrix, matrix_to_axis_angle

__all__ = ["axis_angle_to_matrix", "matrix_to_axis_angle", "weak_perspective_project"]
