"""Optimal one-to-one matching of detections to tracks (a small Hungarian solver, no SciPy).

A frame's matrices are small (tens of tracks and detections), and there the
cost is Python and NumPy call overhead, not arithmetic. Two things keep it
low. Most tracks have a single detection near them that no other track comes
near; `match_by_iou` settles such pairs before the solver runs, so the solver
only sees the tracks and detections that compete, and often nothing at all.
And on a small matrix the solver runs over plain lists, where each augmenting
step costs a short loop instead of a dozen NumPy calls; a large one keeps the
vectorised steps. Both run the same floating-point operations in the same
order, so they give the same answer, ties included.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import MutableSequence, Sequence

import numpy as np
import numpy.typing as npt

IntArray = npt.NDArray[np.intp]

# Up to this many cells the solver loops over lists: about where NumPy's
# per-call overhead stops outweighing Python's per-element cost.
_LIST_SOLVER_CELLS = 2048
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

    if n * m <= _LIST_SOLVER_CELLS:
        row_of_col = np.array(_paths_over_lists(c.tolist(), n, m), dtype=np.intp)
    else:
        row_of_col = _paths_vectorised(c)
    cols = np.flatnonzero(row_of_col[1:]).astype(np.intp)
    rows = (row_of_col[1:][cols] - 1).astype(np.intp)
    if transposed:
        rows, cols = cols, rows
    order = np.argsort(rows, kind="stable")
    return rows[order], cols[order]


def _augment(row_of_col: MutableSequence[int] | IntArray, way: Sequence[int] | IntArray, col: int) -> None:
    """Flip the augmenting path that ends at `col`: each column on it takes the row of the one
    before it (`way`), back to the path's virtual start, column 0."""
    while col:
        prev = int(way[col])
        row_of_col[col] = row_of_col[prev]
        col = prev


def _paths_vectorised(c: npt.NDArray[np.float64]) -> IntArray:
    """Row (1-based, 0 = none) of each column (1-based), for n <= m rows; one NumPy call per column set."""
    n, m = c.shape
    # Column 0 is the virtual start of each augmenting path.
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
        _augment(row_of_col, way, col)
    return row_of_col


def _paths_over_lists(c: list[list[float]], n: int, m: int) -> list[int]:
    """`_paths_vectorised` step for step over Python floats: the same operations, one column at a time."""
    u = [0.0] * (n + 1)
    v = [0.0] * (m + 1)
    row_of_col = [0] * (m + 1)
    way = [0] * (m + 1)
    for row in range(1, n + 1):
        row_of_col[0] = row
        col = 0
        min_slack = [math.inf] * (m + 1)
        used = [False] * (m + 1)
        while True:
            used[col] = True
            r = row_of_col[col]
            costs, u_r = c[r - 1], u[r]
            delta, next_col = math.inf, 0
            for j in range(1, m + 1):
                if used[j]:
                    continue
                slack = costs[j - 1] - u_r - v[j]
                if slack < min_slack[j]:
                    min_slack[j] = slack
                    way[j] = col
                if min_slack[j] < delta:  # strict: the first of equal minima, as argmin
                    delta, next_col = min_slack[j], j
            for j in range(m + 1):
                if used[j]:
                    u[row_of_col[j]] += delta
                    v[j] -= delta
                else:
                    min_slack[j] -= delta
            col = next_col
            if row_of_col[col] == 0:
                break
        _augment(row_of_col, way, col)
    return row_of_col


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
    pair_rows, pair_cols = (sim >= min_iou).nonzero()
    gains = sim[pair_rows, pair_cols].tolist()
    if not all(math.isfinite(min_iou - gain) for gain in gains):
        raise ValueError(
            f"match_by_iou: IoUs and min_iou must be finite, got min_iou={min_iou} and {max(gains)}"
        )
    pairs = _match(sim, pair_rows.tolist(), pair_cols.tolist(), gains, min_iou)
    if transposed:
        pairs = sorted((c, r) for r, c in pairs)
    both = np.array(pairs, dtype=np.intp).reshape(-1, 2)
    return both[:, 0], both[:, 1]


def _match(
    sim: npt.NDArray[np.float64],
    pair_rows: list[int],
    pair_cols: list[int],
    gains: list[float],
    min_iou: float,
) -> list[tuple[int, int]]:
    """`match_by_iou` of a matrix with no more rows than columns, given its eligible pairs; by row."""
    lone_rows = _lone(pair_rows)
    lone_cols = _lone(pair_cols)
    sure = {
        r: c
        for r, c, gain in zip(pair_rows, pair_cols, gains, strict=True)
        if r in lone_rows and c in lone_cols and gain - min_iou > _SURE_MARGIN
    }
    open_cols = sorted(set(pair_cols) - set(sure.values()))
    if open_cols:
        open_rows = [r for r in range(sim.shape[0]) if r not in sure]
        part = sim[np.array(open_rows)[:, None], open_cols]
        sure.update((open_rows[r], open_cols[c]) for r, c in _solve(part, min_iou))
    return sorted(sure.items())


def _lone(values: list[int]) -> set[int]:
    """The values that occur once."""
    distinct = set(values)
    if len(distinct) == len(values):
        return distinct
    return {v for v, count in Counter(values).items() if count == 1}


def _solve(sim: npt.NDArray[np.float64], min_iou: float) -> list[tuple[int, int]]:
    """The solver on a whole matrix of at most as many rows as columns, one dummy column per row.

    Pairs (row, col) in any order. IoUs at or above `min_iou` must be finite.
    """
    n, m = sim.shape
    if n * (m + n) > _LIST_SOLVER_CELLS:
        cost = np.where(sim >= min_iou, min_iou - sim, 1.0)
        rows, cols = linear_assignment(np.concatenate([cost, np.zeros((n, n))], axis=1))
        return [(r, c) for r, c in zip(rows.tolist(), cols.tolist(), strict=True) if c < m]
    # The cost matrix above, as lists: the same numbers from the same operations.
    dummies = [0.0] * n
    cost_rows = [[min_iou - x if x >= min_iou else 1.0 for x in row] + dummies for row in sim.tolist()]
    row_of_col = _paths_over_lists(cost_rows, n, m + n)
    return [(r - 1, c) for c, r in enumerate(row_of_col[1 : m + 1]) if r]
