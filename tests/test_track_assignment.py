"""IoU matching: pairs settled before the solver give exactly the whole solver's answer.

The reference below is `match_by_iou` as it stood before pairs were settled:
the solver on the whole matrix, shorter side as rows, one dummy column per row.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
import pytest

from edge_agent.pipeline.track import assignment
from edge_agent.pipeline.track.assignment import linear_assignment, match_by_iou

Pairs = list[tuple[int, int]]


def whole_solver(iou: npt.NDArray[np.floating], min_iou: float) -> Pairs:
    sim = np.asarray(iou, dtype=np.float64)
    transposed = sim.shape[0] > sim.shape[1]
    if transposed:
        sim = sim.T
    n, m = sim.shape
    cost = np.where(sim >= min_iou, min_iou - sim, 1.0)
    rows, cols = linear_assignment(np.concatenate([cost, np.zeros((n, n))], axis=1))
    pairs = [(r, c) for r, c in zip(rows.tolist(), cols.tolist(), strict=True) if c < m]
    return sorted((c, r) for r, c in pairs) if transposed else pairs


def matched(iou: npt.NDArray[np.floating], min_iou: float) -> Pairs:
    rows, cols = match_by_iou(iou, min_iou)
    assert rows.dtype == cols.dtype == np.intp
    return list(zip(rows.tolist(), cols.tolist(), strict=True))


def sparse_iou(rng: np.random.Generator, min_iou: float) -> npt.NDArray[np.float32]:
    """A frame's IoU matrix: mostly zeros, values on a coarse grid (ties), some exactly at `min_iou`."""
    n, m = (int(v) for v in rng.integers(0, 12, 2))
    values = np.array([0.05, min_iou, min_iou, 0.3, 0.6, 0.6, 0.9], dtype=np.float32)
    iou = np.where(rng.random((n, m)) < rng.uniform(0.05, 0.5), rng.choice(values, (n, m)), 0.0)
    if n and m and rng.random() < 0.3:  # two detections on one box, or two tracks on one spot
        if rng.random() < 0.5:
            iou[rng.integers(0, n)] = iou[rng.integers(0, n)]
        else:
            iou[:, rng.integers(0, m)] = iou[:, rng.integers(0, m)]
    return iou.astype(np.float32)


@pytest.mark.parametrize("min_iou", [0.2, 0.5])
def test_settled_pairs_give_the_whole_solvers_answer(min_iou: float) -> None:
    rng = np.random.default_rng(12)
    for _ in range(400):
        iou = sparse_iou(rng, min_iou)
        assert matched(iou, min_iou) == whole_solver(iou, min_iou), iou


def test_settled_pairs_give_the_whole_solvers_answer_on_random_values() -> None:
    rng = np.random.default_rng(5)
    for _ in range(300):
        n, m = (int(v) for v in rng.integers(1, 10, 2))
        iou = np.where(rng.random((n, m)) < 0.3, rng.random((n, m)), 0.0).astype(np.float32)
        assert matched(iou, 0.2) == whole_solver(iou, 0.2), iou


@pytest.mark.parametrize(
    ("iou", "expected"),
    [
        # exactly at the threshold: not settled beforehand, and the solver gives it its pair
        ([[0.2, 0.0], [0.0, 0.9]], [(0, 0), (1, 1)]),
        # one track, two detections at the threshold: the lower index wins
        ([[0.2, 0.2]], [(0, 0)]),
        # a settled pair beside a contest the solver decides by the summed IoU
        ([[0.9, 0.0, 0.0], [0.0, 0.6, 0.5], [0.0, 0.5, 0.1]], [(0, 0), (1, 2), (2, 1)]),
        # more tracks than detections
        ([[0.0], [0.3], [0.0], [0.25]], [(1, 0)]),
    ],
)
def test_matches_at_the_threshold_and_in_contests(iou: list[list[float]], expected: Pairs) -> None:
    arr = np.asarray(iou, dtype=np.float32)
    assert matched(arr, 0.2) == expected == whole_solver(arr, 0.2)


def test_the_solver_sees_only_the_contested_part(monkeypatch: pytest.MonkeyPatch) -> None:
    shapes: list[tuple[int, ...]] = []
    solve = assignment._solve

    def recording(sim: npt.NDArray[np.float64], min_iou: float) -> list[tuple[int, int]]:
        shapes.append(sim.shape)
        return solve(sim, min_iou)

    monkeypatch.setattr(assignment, "_solve", recording)
    alone = np.diag([0.9, 0.5, 0.7]).astype(np.float32)
    assert matched(alone, 0.2) == [(0, 0), (1, 1), (2, 2)]
    assert shapes == []
    contested = np.array([[0.9, 0.0, 0.0, 0.0], [0.0, 0.6, 0.5, 0.0], [0.0, 0.5, 0.1, 0.0]], np.float32)
    assert matched(contested, 0.2) == [(0, 0), (1, 2), (2, 1)]
    assert shapes == [(2, 2)]  # rows 1 and 2, columns 1 and 2


def test_an_infinite_iou_is_still_refused() -> None:
    with pytest.raises(ValueError, match="must be finite"):
        match_by_iou(np.array([[np.inf, 0.0]]), 0.2)


@pytest.mark.parametrize("values", ["ties", "random"])
def test_the_list_solver_gives_the_vectorised_solvers_answer(
    values: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    rng = np.random.default_rng(3)
    for _ in range(150):
        shape = (int(rng.integers(1, 12)), int(rng.integers(1, 12)))
        cost = rng.integers(0, 4, shape).astype(float) if values == "ties" else rng.normal(0, 1, shape)
        monkeypatch.setattr(assignment, "_LIST_SOLVER_CELLS", 10**9)
        over_lists = linear_assignment(cost)
        monkeypatch.setattr(assignment, "_LIST_SOLVER_CELLS", 0)
        vectorised = linear_assignment(cost)
        assert over_lists[0].tolist() == vectorised[0].tolist(), cost
        assert over_lists[1].tolist() == vectorised[1].tolist(), cost


def test_a_crowd_goes_to_the_vectorised_solver_with_the_same_answer() -> None:
    rng = np.random.default_rng(8)
    iou = np.where(rng.random((40, 45)) < 0.3, rng.random((40, 45)), 0.0).astype(np.float32)
    assert 40 * (45 + 40) > assignment._LIST_SOLVER_CELLS
    assert matched(iou, 0.2) == whole_solver(iou, 0.2)
    assert matched(iou.T, 0.2) == whole_solver(iou.T, 0.2)
