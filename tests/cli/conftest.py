"""Fixtures of the CLI tests."""

import pytest


def fast_report_flags(
    *, max_iters: int, n_images: int, eval_seeds: int, intervention_seeds: int
) -> list[str]:
    """`report` flags that make an audit of the world take seconds: few iterations, images and seeds, no
    attributions, no progress bars, one thread."""
    return [
        "--max-iters",
        str(max_iters),
        "--n-images",
        str(n_images),
        "--eval-seeds",
        str(eval_seeds),
        "--intervention-seeds",
        str(intervention_seeds),
        "--no-attributions",
        "--no-progress",
        "--threads",
        "1",
    ]


@pytest.fixture
def report_flags():
    """:func:`fast_report_flags`, for a test to call with its own sizes."""
    return fast_report_flags
