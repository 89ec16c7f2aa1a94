"""``SyntheticWaveformDigitizer``: time-of-flight digitizer traces, baseline noise plus electron pulses."""

from __future__ import annotations

from typing import Literal

import numpy as np
from pydantic import Field

from streamer.base import ComponentConfig, RunContext
from streamer.registry import Component, register
from streamer.sources.indexed import IndexedDataSource, event_rng

PULSE_HALF_WIDTH = 8  # samples each side of a pulse's centre that the template covers


class SyntheticWaveformDigitizerConfig(ComponentConfig):
    """``channels`` x ``samples`` int16 traces per event; pulses go upwards from ``baseline``."""

    type: Literal["SyntheticWaveformDigitizer"]
    channels: int = Field(16, ge=1, le=1024)
    samples: int = Field(8192, ge=2 * PULSE_HALF_WIDTH + 1, le=1 << 22)
    baseline: int = Field(0, ge=-16384, le=16384)
    noise_rms: float = Field(2.0, ge=0)
    pulses_per_channel: float = Field(4.0, ge=0, description="mean electron pulses per channel per event")
    pulse_amplitude: float = Field(300.0, gt=0, description="mean pulse height in ADC counts")
    pulse_width_samples: float = Field(1.5, gt=0, description="Gaussian sigma of a pulse in samples")


class SyntheticWaveformDigitizer(IndexedDataSource):
    config: SyntheticWaveformDigitizerConfig

    def __init__(self, name: str, config: ComponentConfig, context: RunContext, seed: int = 0) -> None:
        super().__init__(name, config, context, seed)
        offsets = np.arange(-PULSE_HALF_WIDTH, PULSE_HALF_WIDTH + 1)
        self._offsets = offsets
        self._template = np.exp(-(offsets**2) / (2.0 * self.config.pulse_width_samples**2))

    def extract(self, index: int) -> np.ndarray:
        cfg = self.config
        rng = event_rng(self.seed, index, self.name)
        trace = rng.normal(cfg.baseline, cfg.noise_rms, size=(cfg.channels, cfg.samples)).astype(np.float32)
        counts = rng.poisson(cfg.pulses_per_channel, size=cfg.channels)
        n = int(counts.sum())
        if n:
            channel = np.repeat(np.arange(cfg.channels), counts)
            centre = rng.integers(PULSE_HALF_WIDTH, cfg.samples - PULSE_HALF_WIDTH, size=n)
            height = rng.gamma(4.0, cfg.pulse_amplitude / 4.0, size=n)
            flat = (channel * cfg.samples + centre)[:, None] + self._offsets[None, :]
            np.add.at(trace.reshape(-1), flat.ravel(), (height[:, None] * self._template[None, :]).ravel())
        return np.clip(np.rint(trace), -32768, 32767).astype(np.int16)


register("data_sources", Component(SyntheticWaveformDigitizerConfig, SyntheticWaveformDigitizer))
