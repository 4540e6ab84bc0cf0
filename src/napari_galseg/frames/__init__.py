"""A user's frame as surveys ship it: science + noise (rms, variance or weight) + mask + header.

One multi-extension coadd (HSC/LSST IMAGE/MASK/VARIANCE, DES SCI/MSK/WGT, HST SCI/WHT) or
separate files; :func:`open_frame` finds the planes and gives the segmenters a science plane with
NaN where there is no data and a 1σ map, both converted lazily, window by window.
"""
from .frame import Frame, FrameScience, NoDataError, frame_arrays, open_frame
from .mask import DEFAULT_BAD_PLANES, MaskPlane, bad_bits, plane_names
from .noise import KINDS, WEIGHT_TYPES, NoiseMap, noise_kind, to_rms
from .planes import Planes, find_planes

__all__ = ["DEFAULT_BAD_PLANES", "Frame", "FrameScience", "KINDS", "MaskPlane", "NoDataError", "NoiseMap", "Planes", "WEIGHT_TYPES",
           "bad_bits", "find_planes", "frame_arrays", "noise_kind", "open_frame", "plane_names", "to_rms"]
