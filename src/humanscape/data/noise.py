"""Deterministic noise on global pixel coordinates, for the synthetic world.

Every value is a pure function of (seed, key, row, col): a tile generated alone equals the same
tile cut from a larger array, which is what lets :mod:`humanscape.data.synthetic` build scenes
of any size tile by tile. Value noise (Perlin 1985, value variant) interpolates hashed lattice
values with a smoothstep; fractal Brownian motion sums octaves of it.
"""

from __future__ import annotations

import math

import numpy as np


def hash_uniform(seed: int, key: int, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """splitmix64-style hash of (seed, key, a, b) -> uniform float64 in [0, 1)."""
    with np.errstate(over="ignore"):
        x = (
            np.uint64(seed) * np.uint64(0x9E3779B97F4A7C15)
            ^ np.uint64(key) * np.uint64(0xBF58476D1CE4E5B9)
            ^ a.astype(np.int64).astype(np.uint64) * np.uint64(0x94D049BB133111EB)
            ^ b.astype(np.int64).astype(np.uint64) * np.uint64(0xD6E8FEB86659FD93)
        )
        x ^= x >> np.uint64(30)
        x *= np.uint64(0xBF58476D1CE4E5B9)
        x ^= x >> np.uint64(27)
        x *= np.uint64(0x94D049BB133111EB)
        x ^= x >> np.uint64(31)
    return (x >> np.uint64(11)).astype(np.float64) / float(1 << 53)


def value_noise(
    rows: np.ndarray, cols: np.ndarray, scale: float, seed: int, key: int
) -> np.ndarray:
    """Smooth value noise in [0, 1] on global pixel coordinates (1-D ``rows`` x ``cols``)."""
    fr, fc = rows / scale, cols / scale
    r0, c0 = np.floor(fr).astype(np.int64), np.floor(fc).astype(np.int64)
    tr, tc = fr - r0, fc - c0
    tr, tc = tr * tr * (3 - 2 * tr), tc * tc * (3 - 2 * tc)  # smoothstep
    lr = np.arange(r0.min(), r0.max() + 2)
    lc = np.arange(c0.min(), c0.max() + 2)
    lattice = hash_uniform(seed, key, lr[:, None], lc[None, :])
    ir, ic = (r0 - lr[0])[:, None], (c0 - lc[0])[None, :]
    top = lattice[ir, ic] * (1 - tc) + lattice[ir, ic + 1] * tc
    bottom = lattice[ir + 1, ic] * (1 - tc) + lattice[ir + 1, ic + 1] * tc
    return (top * (1 - tr)[:, None] + bottom * tr[:, None]).astype(np.float32)


def value_noise_at(
    rows: np.ndarray, cols: np.ndarray, scale: float, seed: int, key: int
) -> np.ndarray:
    """:func:`value_noise` at scattered points (same lattice, same values)."""
    fr, fc = rows / scale, cols / scale
    r0, c0 = np.floor(fr).astype(np.int64), np.floor(fc).astype(np.int64)
    tr, tc = fr - r0, fc - c0
    tr, tc = tr * tr * (3 - 2 * tr), tc * tc * (3 - 2 * tc)
    top = hash_uniform(seed, key, r0, c0) * (1 - tc) + hash_uniform(seed, key, r0, c0 + 1) * tc
    bottom = (
        hash_uniform(seed, key, r0 + 1, c0) * (1 - tc)
        + hash_uniform(seed, key, r0 + 1, c0 + 1) * tc
    )
    return (top * (1 - tr) + bottom * tr).astype(np.float32)


def fbm_at(
    rows: np.ndarray, cols: np.ndarray, scale: float, seed: int, key: int, octaves: int = 4
) -> np.ndarray:
    """:func:`fbm` at scattered points."""
    total, norm, amp = np.zeros(rows.size, np.float32), 0.0, 1.0
    for o in range(octaves):
        total += amp * value_noise_at(rows, cols, scale / 2**o, seed, key * 16 + o)
        norm += amp
        amp *= 0.5
    return total / norm


def fbm(
    rows: np.ndarray, cols: np.ndarray, scale: float, seed: int, key: int, octaves: int = 4
) -> np.ndarray:
    """Fractal sum of value-noise octaves, normalised to about [0, 1]."""
    total, norm, amp = np.zeros((rows.size, cols.size), np.float32), 0.0, 1.0
    for o in range(octaves):
        total += amp * value_noise(rows, cols, scale / 2**o, seed, key * 16 + o)
        norm += amp
        amp *= 0.5
    return total / norm


def pixel_gauss(rows: np.ndarray, cols: np.ndarray, seed: int, key: int) -> np.ndarray:
    """Per-pixel approximately standard-normal noise (sum of 4 uniforms), deterministic."""
    acc = np.zeros((rows.size, cols.size), np.float64)
    for k in range(4):
        acc += hash_uniform(seed, key * 8 + k, rows[:, None], cols[None, :])
    return ((acc - 2.0) * math.sqrt(3.0)).astype(np.float32)
