"""CLASS_STAR: SExtractor's star/galaxy neural network (``neurro.c``) on its eight isophotal areas.

The inputs are the areas above eight thresholds spaced geometrically between the analysis
threshold and the peak, in units of the seeing disc (SEEING_FWHM / PIXEL_SCALE), the peak over
the threshold, and the seeing; the weights come from the ``.nnw`` file (STARNNW_NAME).
"""
from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np

from .errors import SExtractorInputError

NISO = 8


@dataclasses.dataclass
class Network:
    nn: list[int]
    inbias: np.ndarray
    inscale: np.ndarray
    weights: list[np.ndarray]  #: per layer, (n_in, n_out)
    biases: list[np.ndarray]
    outbias: np.ndarray
    outscale: np.ndarray


def read_nnw(path) -> Network:
    """Read a SExtractor ``.nnw`` weight table (what getnnw() reads)."""
    path = Path(path)
    try:
        lines = path.read_text().splitlines()
    except OSError as exc:
        raise SExtractorInputError(f"{path}: cannot read the neural-network file ({exc.strerror or exc}); "
                                   "check STARNNW_NAME") from None
    if not lines or not lines[0].startswith("NNW"):
        raise SExtractorInputError(f"{path} line 1: not a NNW table (it must start with NNW); check STARNNW_NAME")
    rows = []
    for number, raw in enumerate(lines[1:], 2):
        text = raw.strip()
        if not text or text.startswith("#"):
            continue
        try:
            rows.append((number, [float(v) for v in text.split()]))
        except ValueError:
            raise SExtractorInputError(f"{path} line {number}: {text[:40]!r} is not a row of numbers") from None
    try:
        nlayers = int(rows[0][1][0])
        nn = [int(v) for v in rows[0][1][1:1 + nlayers]]
        inbias = np.array(rows[1][1][:nn[0]])
        inscale = np.array(rows[2][1][:nn[0]])
        weights, biases, r = [], [], 3
        for layer in range(nlayers - 1):
            w = np.zeros((nn[layer], nn[layer + 1]))
            b = np.zeros(nn[layer + 1])
            for j in range(nn[layer + 1]):
                vals = rows[r][1]
                w[:, j] = vals[:nn[layer]]
                b[j] = vals[nn[layer]]
                r += 1
            weights.append(w)
            biases.append(b)
        outbias = np.array(rows[r][1][:nn[-1]])
        outscale = np.array(rows[r + 1][1][:nn[-1]])
    except (IndexError, ValueError):
        raise SExtractorInputError(f"{path}: the weight table is incomplete or inconsistent with its layer sizes") from None
    if len(inbias) != nn[0] or len(inscale) != nn[0]:
        raise SExtractorInputError(f"{path}: the input scaling rows need {nn[0]} values")
    return Network(nn, inbias, inscale, weights, biases, outbias, outscale)


def class_star(net: Network, iso: np.ndarray, peak: np.ndarray, thresh: float, fwhm: float, pixscale: float):
    """neurresp() for each object: ``iso`` (n, 8) areas, ``peak`` FLUX_MAX, analysis threshold."""
    fac2 = (fwhm / pixscale) ** 2
    iso = np.asarray(iso, np.float64)
    with np.errstate(divide="ignore"):
        areas = np.log10(np.where(iso > 0, iso / fac2, 0.01))
        ratio = np.log10(np.where(peak > 0.0, peak / thresh, 0.1)) if thresh > 0.0 else np.full(len(peak), -1.0)
    x = np.column_stack([areas[:, :1], ratio, areas[:, 1:], np.full(len(peak), np.log10(fwhm))])
    n = x * net.inscale + net.inbias
    for w, b in zip(net.weights, net.biases):
        n = 1.0 / (1.0 + np.exp(-(n @ w + b)))
    return ((n - net.outbias) / net.outscale)[:, 0].astype(np.float32)


def iso_areas(val: np.ndarray, peak: float, thresh: float) -> np.ndarray:
    """The eight isophotal areas of examineiso() (pixels above each geometric threshold)."""
    if peak > 0.0 and thresh > 0.0:
        levels = np.array([thresh * (peak / thresh) ** (i / NISO) for i in range(NISO)], np.float32)
    else:
        levels = np.zeros(NISO, np.float32)
    # a pixel counts for each threshold in turn while it stays above them (SExtractor's cascade)
    return np.logical_and.accumulate(val[:, None] > levels[None, :], axis=1).sum(axis=0)
