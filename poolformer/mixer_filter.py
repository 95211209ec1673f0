"""PoolFormer's token mixer written as what it is: a fixed 3 × 3 high-pass filter.

`Pooling` computes avgpool(x) − x with `count_include_pad=False`, so at every position the output is
a weighted sum of the neighbourhood with weights 1/n (n = positions the window covers: 9 inside,
6 on an edge, 4 in a corner) and 1/n − 1 at the centre. The weights sum to zero: flat regions give
zero and only differences between a token and its neighbours pass. This module builds those kernels
and applies the filter with numpy alone, independently of torch's pooling, so a test can check one
against the other.
"""

from __future__ import annotations

import numpy as np

POOL_SIZE = 3  # what every PoolFormer is trained with

BORDER_CASES = ("interior", "edge", "corner")


def neighbour_counts(height: int, width: int, pool_size: int = POOL_SIZE) -> np.ndarray:
    """How many in-image positions the pooling window covers at each token: the 1/n of the kernel."""
    radius = pool_size // 2
    rows = np.minimum(np.arange(height) + radius, height - 1) - np.maximum(np.arange(height) - radius, 0) + 1
    columns = np.minimum(np.arange(width) + radius, width - 1) - np.maximum(np.arange(width) - radius, 0) + 1
    return np.outer(rows, columns)


def kernel_at(row: int, column: int, height: int, width: int, pool_size: int = POOL_SIZE) -> np.ndarray:
    """The filter's weights around one token of an height × width map; positions off the map weigh 0."""
    radius = pool_size // 2
    kernel = np.zeros((pool_size, pool_size))
    for dr in range(-radius, radius + 1):
        for dc in range(-radius, radius + 1):
            if 0 <= row + dr < height and 0 <= column + dc < width:
                kernel[dr + radius, dc + radius] = 1.0
    kernel /= kernel.sum()
    kernel[radius, radius] -= 1.0  # the "− x": the block adds x back itself
    return kernel


def border_kernels(pool_size: int = POOL_SIZE) -> dict[str, np.ndarray]:
    """The three kernels a pooling mixer uses: inside the map, on an edge (the top), in a corner (top left)."""
    middle = pool_size // 2  # a pool_size × pool_size map has exactly one interior token, its middle
    positions = {"interior": (middle, middle), "edge": (0, middle), "corner": (0, 0)}
    return {case: kernel_at(*positions[case], pool_size, pool_size, pool_size) for case in BORDER_CASES}


def window_sums(values: np.ndarray, pool_size: int = POOL_SIZE) -> np.ndarray:
    """Sum of each pool_size × pool_size neighbourhood over the last two axes, zeros beyond the border."""
    radius = pool_size // 2
    height, width = values.shape[-2:]
    padding = [(0, 0)] * (values.ndim - 2) + [(radius, radius), (radius, radius)]
    padded = np.pad(values, padding)
    sums = np.zeros_like(values)
    for dr in range(pool_size):
        for dc in range(pool_size):
            sums += padded[..., dr : dr + height, dc : dc + width]
    return sums


def pool_minus_identity(values: np.ndarray, pool_size: int = POOL_SIZE) -> np.ndarray:
    """The pooling token mixer on an (..., H, W) array: neighbourhood mean (borders excluded) minus the token."""
    values = np.asarray(values, dtype=np.float64)
    counts = neighbour_counts(*values.shape[-2:], pool_size)
    return window_sums(values, pool_size) / counts - values
