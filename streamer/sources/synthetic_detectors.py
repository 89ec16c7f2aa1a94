"""``SyntheticAreaDetector``: Jungfrau-4M / ePix10k-2M-like frames with a Poisson background and Bragg peaks.

Generation is vectorised and cheap: a small pool of Poisson backgrounds (with a water ring) is drawn once
per rank from the seed; each event takes one pool frame, rolls it by a random offset and adds a random
number of Gaussian spots. Everything is drawn from a generator seeded by (seed, event index, name).
"""

from __future__ import annotations

from typing import Literal

import numpy as np
from pydantic import Field

from streamer.base import ComponentConfig, RunContext
from streamer.registry import Component, register
from streamer.sources.indexed import IndexedDataSource, event_rng

DETECTOR_SHAPES: dict[str, tuple[int, int, int]] = {
    "jungfrau4M": (8, 512, 1024),
    "epix10k2M": (16, 352, 384),
}
SPOT_RADIUS = 2


class SyntheticAreaDetectorConfig(ComponentConfig):
    """A stack of detector panels (uint16 photon counts) per event."""

    type: Literal["SyntheticAreaDetector"]
    detector: Literal["jungfrau4M", "epix10k2M"] = "jungfrau4M"
    shape: tuple[int, int, int] | None = Field(
        None, description="(panels, height, width) overriding the detector's shape, e.g. small frames for tests")
    background_rate: float = Field(0.05, ge=0, description="mean background photons per pixel")
    peaks_per_event: float = Field(40.0, ge=0, description="mean number of Bragg-like peaks per event")
    peak_intensity: float = Field(400.0, gt=0, description="mean integrated photons per peak")
    background_pool: int = Field(4, ge=1, le=64, description="distinct background frames drawn once per rank")

    def frame_shape(self) -> tuple[int, int, int]:
        return self.shape if self.shape is not None else DETECTOR_SHAPES[self.detector]


def _background_rate_map(shape: tuple[int, int, int], rate: float) -> np.ndarray:
    """Mean photons per pixel: flat rate plus a water ring around the centre of the tiled panels."""
    panels, height, width = shape
    cols = 2 if panels > 1 else 1
    rows = -(-panels // cols)
    p = np.arange(panels)
    y0 = (p // cols * height)[:, None, None]
    x0 = (p % cols * width)[:, None, None]
    yy = y0 + np.arange(height)[None, :, None]
    xx = x0 + np.arange(width)[None, None, :]
    cy, cx = rows * height / 2.0, cols * width / 2.0
    r = np.hypot(yy - cy, xx - cx)
    r_ring = 0.35 * min(rows * height, cols * width)
    ring = 3.0 * np.exp(-(((r - r_ring) / (0.05 * r_ring + 1.0)) ** 2))
    return (rate * (1.0 + ring)).astype(np.float32)


def _spot_kernel() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    d = np.arange(-SPOT_RADIUS, SPOT_RADIUS + 1)
    dy, dx = np.meshgrid(d, d, indexing="ij")
    weights = np.exp(-(dy**2 + dx**2) / 2.0)
    return dy.ravel(), dx.ravel(), (weights / weights.sum()).ravel()


class SyntheticAreaDetector(IndexedDataSource):
    config: SyntheticAreaDetectorConfig

    def __init__(self, name: str, config: ComponentConfig, context: RunContext, seed: int = 0) -> None:
        super().__init__(name, config, context, seed)
        self.shape = self.config.frame_shape()
        self._pool: np.ndarray | None = None
        self._kernel = _spot_kernel()

    def prepare(self) -> None:
        self.pool()

    def pool(self) -> np.ndarray:
        if self._pool is None:
            rng = event_rng(self.seed, 0, self.name + "/background-pool")
            rate = _background_rate_map(self.shape, self.config.background_rate)
            size = (self.config.background_pool, *self.shape)
            self._pool = np.minimum(rng.poisson(rate, size=size), 65535).astype(np.uint16)
        return self._pool

    def extract(self, index: int) -> np.ndarray:
        cfg = self.config
        panels, height, width = self.shape
        rng = event_rng(self.seed, index, self.name)
        pool = self.pool()
        frame = np.roll(pool[rng.integers(len(pool))], int(rng.integers(width)), axis=-1)
        n = int(rng.poisson(cfg.peaks_per_event))
        if n == 0 or height <= 2 * SPOT_RADIUS or width <= 2 * SPOT_RADIUS:
            return frame
        dy, dx, weights = self._kernel
        panel = rng.integers(panels, size=n)
        y = rng.integers(SPOT_RADIUS, height - SPOT_RADIUS, size=n)
        x = rng.integers(SPOT_RADIUS, width - SPOT_RADIUS, size=n)
        photons = rng.exponential(cfg.peak_intensity, size=n)
        flat = ((panel * height + y)[:, None] + dy[None, :]) * width + x[:, None] + dx[None, :]
        values = np.minimum(np.rint(photons[:, None] * weights[None, :]), 16383).astype(np.uint16)
        np.add.at(frame.reshape(-1), flat.ravel(), values.ravel())
        return frame


register("data_sources", Component(SyntheticAreaDetectorConfig, SyntheticAreaDetector))
