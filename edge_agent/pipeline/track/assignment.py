"""Optimal one-to-one matching of detections to tracks (a small Hungarian solver, no SciPy).

The solver steps through NumPy calls on rows of a few dozen numbers, so its
cost is call overhead, paid once per augmenting step. In a frame most tracks
have a single detection near them and that detection no other track, and
`match_by_iou` settles such pairs before the solver runs: it only sees the
tracks and detections that compete, and often nothing at all.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

IntArray = npt.NDArray[np.intp]

# How far a settled pair must beat its dummy column (see `match_by_iou`). The
# solver's potentials are sums of a few costs of magnitude <= 2, exact to
# about 1e-15; float32 IoUs near a threshold lie at least 1e-9 apart.
_SURE_MARGIN = 1e-9


def linear_assignment(cost: npt.ArrayLike) -> tuple[IntArray, IntArray]:
    """Minimum-cost assignment of a rectangular cost matrix (rows, cols).

    Every row (or every column, whichever is fewer) is assigned; pairs are
    returned sorted by row. Shortest augmenting paths with potentials
    (Hungarian / Jonker-Volgenant), O(n² m). Among equal-cost choices the
    lower column index wins, so the result is deterministic.
    """
    c = np.asarray(cost, dtype=np.float64)
    if c.ndim != 2:
        raise ValueError(f"linear_assignment: expected a 2-D cost matrix, got shape {c.shape}")
    if not np.isfinite(c).all():
        raise ValueError("linear_assignment: cost matrix has NaN or infinite entries")
    transposed = c.shape[0] > c.shape[1]
    if transposed:
        c = c.T
    n, m = c.shape
    if n == 0:
        empty = np.zeros(0, dtype=np.intp)
        return empty, empty.copy()

    # 1-based arrays; column 0 is the virtual start of each augmenting path.
    u = np.zeros(n + 1)
    v = np.zeros(m + 1)
    row_of_col = np.zeros(m + 1, dtype=np.intp)
    way = np.zeros(m + 1, dtype=np.intp)
    for row in range(1, n + 1):
        row_of_col[0] = row
        col = 0
        min_slack = np.full(m + 1, np.inf)
        used = np.zeros(m + 1, dtype=bool)
        while True:
            used[col] = True
            r = row_of_col[col]
            free = ~used[1:]
            slack = c[r - 1] - u[r] - v[1:]
            better = free & (slack < min_slack[1:])
            min_slack[1:][better] = slack[better]
            way[1:][better] = col
            candidates = np.where(free, min_slack[1:], np.inf)
            next_col = int(np.argmin(candidates)) + 1
            delta = candidates[next_col - 1]
            u[row_of_col[used]] += delta
            v[used] -= delta
            min_slack[~used] -= delta
            col = next_col
            if row_of_col[col] == 0:
                break
        while col:
            prev = way[col]
            row_of_col[col] = row_of_col[prev]
            col = prev

    cols = np.flatnonzero(row_of_col[1:]).astype(np.intp)
    rows = (row_of_col[1:][cols] - 1).astype(np.intp)
    if transposed:
        rows, cols = cols, rows
    order = np.argsort(rows, kind="stable")
    return rows[order], cols[order]


def match_by_iou(iou: npt.ArrayLike, min_iou: float) -> tuple[IntArray, IntArray]:
    """Pairs (rows, cols) maximising the summed `iou - min_iou` over pairs with `iou >= min_iou`.

    Rows and columns may stay unmatched: each row gets a dummy column worth
    zero, and a pair below `min_iou` costs more than any dummy, so it is never
    chosen. A pair exactly at `min_iou` ties with its dummy and wins it.

    A row whose only eligible column has no other eligible row, with an IoU
    above `min_iou`, is in every optimal matching; such pairs are taken as
    they are and the solver runs on the rest. That gives the solver's own
    answer, ties included: solving the whole matrix (shorter side as rows),
    such a row takes its column in one step and changes no potential that
    another row reads, and no other row's search reaches that column, nor a
    column without eligible rows, because either costs them one more than a
    free dummy column. Rows without eligible columns stay in: they take dummy
    columns, and where they sit can decide a tie among the others.
    """
    sim = np.asarray(iou, dtype=np.float64)
    if sim.ndim != 2:
        raise ValueError(f"match_by_iou: expected a 2-D matrix, got shape {sim.shape}")
    transposed = sim.shape[0] > sim.shape[1]
    if transposed:
        sim = sim.T
    eligible = sim >= min_iou
    if not np.isfinite(min_iou - sim[eligible]).all():
        rows, cols = _solve(sim, eligible, min_iou)  # raises the solver's error
    else:
        rows, cols = _match(sim, eligible, min_iou)
    if transposed:
        rows, cols = cols, rows
        order = np.argsort(rows, kind="stable")
        rows, cols = rows[order], cols[order]
    return rows, cols


def _match(
    sim: npt.NDArray[np.float64], eligible: npt.NDArray[np.bool_], min_iou: float
) -> tuple[IntArray, IntArray]:
    """`match_by_iou` of a matrix with no more rows than columns: settled pairs, then the solver."""
    per_row = eligible.sum(axis=1)
    per_col = eligible.sum(axis=0)
    sure = eligible & (per_row == 1)[:, None] & (per_col == 1)[None, :] & (sim - min_iou > _SURE_MARGIN)
    sure_rows, sure_cols = np.nonzero(sure)
    open_cols = np.flatnonzero((per_col > 0) & ~sure.any(axis=0))
    if len(open_cols) == 0:
        return sure_rows.astype(np.intp), sure_cols.astype(np.intp)
    open_rows = np.flatnonzero(~sure.any(axis=1))
    part = np.ix_(open_rows, open_cols)
    rows, cols = _solve(sim[part], eligible[part], min_iou)
    rows = np.concatenate([sure_rows, open_rows[rows]]).astype(np.intp)
    cols = np.concatenate([sure_cols, open_cols[cols]]).astype(np.intp)
    order = np.argsort(rows, kind="stable")
    return rows[order], cols[order]


def _solve(
    sim: npt.NDArray[np.float64], eligible: npt.NDArray[np.bool_], min_iou: float
) -> tuple[IntArray, IntArray]:
    """The solver on a whole matrix of at most as many rows as columns, one dummy column per row."""
    n, m = sim.shape
    cost = np.where(eligible, min_iou - sim, 1.0)
    rows, cols = linear_assignment(np.concatenate([cost, np.zeros((n, n))], axis=1))
    real = cols < m
    return rows[real], cols[real]
