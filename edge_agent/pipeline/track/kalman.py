"""Constant-velocity Kalman filter over boxes, stepped by elapsed seconds.

The state of one box is `(cx, cy, aspect, h)` (centre and height in pixels,
aspect = w / h) followed by the rate of each per second, as in SORT and
ByteTrack. Those filters step once per frame; this one steps by the media time
between two detector runs, because the detector does not run on every frame
(fps pacing, and the motion gate skips frames where nothing moved).

Process noise is continuous white-noise acceleration. Its covariance over a
step is exact for any split of the step, so predicting 0.2 s five times gives
the same belief as predicting 1.0 s once: irregular spacing changes nothing
but how far the box is carried.

Noise levels are fractions of the box height, so that one setting fits a
person close to the camera (tall box, large pixel jitter) and one far away.

All functions work on batches (one row per track) and return new arrays.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

Array = npt.NDArray[np.float64]

STATE_DIM = 8
MEASUREMENT_DIM = 4
# A box thinner than a pixel is a decoder artefact; flooring keeps aspect and
# the height-scaled noise finite.
_MIN_SIDE_PX = 1.0
_MIN_ASPECT = 1e-3
_MIN_ASPECT_AND_SIDE = np.array([_MIN_ASPECT, _MIN_SIDE_PX])

_IDENTITY = np.eye(STATE_DIM)


def _diagonal(row: int, col: int) -> slice:
    """Flat cells (row + k, col + k), k < 4, of an 8x8 matrix: one diagonal of a 4x4 block."""
    start = row * STATE_DIM + col
    return slice(start, start + (STATE_DIM + 1) * (MEASUREMENT_DIM - 1) + 1, STATE_DIM + 1)


# The blocks of the 8x8 motion matrices, position and rate: F carries dt in
# position-rate; the process noise fills the diagonals of all four blocks.
_POS_POS = _diagonal(0, 0)
_POS_RATE = _diagonal(0, MEASUREMENT_DIM)
_RATE_POS = _diagonal(MEASUREMENT_DIM, 0)
_RATE_RATE = _diagonal(MEASUREMENT_DIM, MEASUREMENT_DIM)


@dataclass(frozen=True)
class MotionNoise:
    """Noise levels of the box motion model.

    `*_h` values are in box heights: `measurement_std_h=0.05` means the
    detector's centre and height jitter by about 5 % of the box height.
    `accel_std_h` is the density of the white-noise acceleration, in box
    heights per second squared over one second: over a step of `dt` seconds it
    widens the speed belief by `accel_std_h * h * sqrt(dt)` pixels per second.
    """

    measurement_std_h: float = 0.05
    aspect_measurement_std: float = 0.02
    accel_std_h: float = 0.3
    aspect_accel_std: float = 0.1
    initial_speed_std_h_per_s: float = 1.0
    initial_aspect_rate_std_per_s: float = 0.1


DEFAULT_NOISE = MotionNoise()


def xyxy_to_measurement(xyxy: npt.ArrayLike) -> Array:
    """Boxes (n, 4) xyxy in pixels to measurements (n, 4) `(cx, cy, aspect, h)`."""
    box = np.asarray(xyxy, dtype=np.float64).reshape(-1, 4)
    top_left, bottom_right = box[:, :2], box[:, 2:]
    wh = np.maximum(bottom_right - top_left, _MIN_SIDE_PX)
    h = wh[:, 1:]
    return np.concatenate([(top_left + bottom_right) / 2, wh[:, :1] / h, h], axis=1)


def state_to_xyxy(means: npt.ArrayLike) -> Array:
    """States (n, 8) to boxes (n, 4) xyxy in pixels."""
    m = np.asarray(means, dtype=np.float64).reshape(-1, STATE_DIM)
    aspect_h = np.maximum(m[:, 2:4], _MIN_ASPECT_AND_SIDE)
    h = aspect_h[:, 1:]
    half_wh = np.concatenate([aspect_h[:, :1] * h, h], axis=1) / 2
    centre = m[:, :2]
    return np.concatenate([centre - half_wh, centre + half_wh], axis=1)


def initiate(xyxy: npt.ArrayLike, noise: MotionNoise = DEFAULT_NOISE) -> tuple[Array, Array]:
    """New tracks from boxes (n, 4): means (n, 8) at rest, covariances (n, 8, 8).

    The speed is unknown, so its spread is wide (`initial_speed_std_h_per_s`);
    the second detection settles it.
    """
    z = xyxy_to_measurement(xyxy)
    n = len(z)
    means = np.concatenate([z, np.zeros((n, 4))], axis=1)
    h = z[:, 3]
    pos = 2 * noise.measurement_std_h * h
    vel = noise.initial_speed_std_h_per_s * h
    std = np.stack(
        [
            pos,
            pos,
            np.full(n, 2 * noise.aspect_measurement_std),
            pos,
            vel,
            vel,
            np.full(n, noise.initial_aspect_rate_std_per_s),
            vel,
        ],
        axis=1,
    )
    covs = np.zeros((n, STATE_DIM, STATE_DIM))
    idx = np.arange(STATE_DIM)
    covs[:, idx, idx] = std**2
    return means, covs


def predict(
    means: npt.ArrayLike,
    covs: npt.ArrayLike,
    dt_s: npt.ArrayLike,
    noise: MotionNoise = DEFAULT_NOISE,
) -> tuple[Array, Array]:
    """Carry each state `dt_s` seconds forward (one step per row; 0 leaves it as is)."""
    m = np.asarray(means, dtype=np.float64).reshape(-1, STATE_DIM)
    p = np.asarray(covs, dtype=np.float64).reshape(-1, STATE_DIM, STATE_DIM)
    n = len(m)
    dt = np.asarray(dt_s, dtype=np.float64)
    if dt.shape != (n,):
        dt = np.broadcast_to(dt, (n,))
    if n and dt.min() < 0:
        raise ValueError(f"kalman.predict: dt_s must be >= 0, got {dt.min()!r}")

    f = np.empty((n, STATE_DIM, STATE_DIM))
    f[:] = _IDENTITY
    f.reshape(n, STATE_DIM * STATE_DIM)[:, _POS_RATE] = dt[:, None]

    h = np.maximum(m[:, 3], _MIN_SIDE_PX)
    q = np.empty((n, MEASUREMENT_DIM))
    q[:] = ((noise.accel_std_h * h) ** 2)[:, None]
    q[:, 2] = noise.aspect_accel_std**2
    half_dt2 = dt**2 / 2
    q_mat = np.zeros((n, STATE_DIM * STATE_DIM))
    for cells, scale in (
        (_POS_POS, dt**3 / 3),
        (_POS_RATE, half_dt2),
        (_RATE_POS, half_dt2),
        (_RATE_RATE, dt),
    ):
        q_mat[:, cells] = q * scale[:, None]

    new_m = np.einsum("nij,nj->ni", f, m)
    np.maximum(new_m[:, 2:4], _MIN_ASPECT_AND_SIDE, out=new_m[:, 2:4])
    new_p = f @ p @ f.transpose(0, 2, 1) + q_mat.reshape(n, STATE_DIM, STATE_DIM)
    return new_m, new_p


def correct(
    means: npt.ArrayLike,
    covs: npt.ArrayLike,
    xyxy: npt.ArrayLike,
    noise: MotionNoise = DEFAULT_NOISE,
) -> tuple[Array, Array]:
    """Fold one detected box (n, 4) into each predicted state (n, 8)."""
    m = np.asarray(means, dtype=np.float64).reshape(-1, STATE_DIM)
    p = np.asarray(covs, dtype=np.float64).reshape(-1, STATE_DIM, STATE_DIM)
    z = xyxy_to_measurement(xyxy)
    if len(z) != len(m):
        raise ValueError(f"kalman.correct: expected {len(m)} boxes, got {len(z)}")
    n = len(m)
    if n == 0:
        return m.copy(), p.copy()

    h = np.maximum(m[:, 3], _MIN_SIDE_PX)
    r_var = np.empty((n, MEASUREMENT_DIM))
    r_var[:] = ((noise.measurement_std_h * h) ** 2)[:, None]
    r_var[:, 2] = noise.aspect_measurement_std * noise.aspect_measurement_std
    s = p[:, :MEASUREMENT_DIM, :MEASUREMENT_DIM].copy()
    s.reshape(n, -1)[:, :: MEASUREMENT_DIM + 1] += r_var  # the diagonal
    # K = P Hᵀ S⁻¹; S is symmetric, so solve S Kᵀ = H P instead of inverting.
    gain = np.linalg.solve(s, p[:, :MEASUREMENT_DIM, :]).transpose(0, 2, 1)
    innovation = z - m[:, :MEASUREMENT_DIM]
    new_m = m + np.einsum("nij,nj->ni", gain, innovation)
    new_p = p - gain @ s @ gain.transpose(0, 2, 1)
    new_p = (new_p + new_p.transpose(0, 2, 1)) / 2
    return new_m, new_p
