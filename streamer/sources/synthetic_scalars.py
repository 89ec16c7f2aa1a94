"""``SyntheticScalar``: per-event scalars (photon energy, wavelength, pulse id)."""

from __future__ import annotations

from typing import Literal

import numpy as np
from pydantic import Field

from streamer.base import ComponentConfig
from streamer.registry import Component, register
from streamer.sources.indexed import IndexedDataSource, event_rng

HC_EV_ANGSTROM = 12398.419843320026


class SyntheticScalarConfig(ComponentConfig):
    """A per-event scalar. ``pulse_id`` is the event's global index, so consumers can check completeness."""

    type: Literal["SyntheticScalar"]
    kind: Literal["photon_energy", "wavelength", "pulse_id"]
    mean_photon_energy_ev: float = Field(9500.0, gt=0, description="centre of the photon energy jitter")
    jitter_fraction: float = Field(0.002, ge=0, lt=0.5, description="relative rms jitter of the photon energy")


class SyntheticScalar(IndexedDataSource):
    config: SyntheticScalarConfig

    def photon_energy(self, index: int) -> float:
        # photon energy and wavelength of one event come from the same draw, so they agree
        rng = event_rng(self.seed, index, "photon_energy")
        cfg = self.config
        return cfg.mean_photon_energy_ev * (1.0 + cfg.jitter_fraction * rng.standard_normal())

    def extract(self, index: int) -> np.generic:
        kind = self.config.kind
        if kind == "pulse_id":
            return np.int64(index)
        energy = self.photon_energy(index)
        if kind == "photon_energy":
            return np.float64(energy)
        return np.float64(HC_EV_ANGSTROM / energy)


register("data_sources", Component(SyntheticScalarConfig, SyntheticScalar))
