"""Time-of-flight reduction: keep only samples around pulses, then turn pulses into arrival times.

Both steps work on a waveform field shaped ``(..., channels, samples)``, so they run on single events and
on batches alike, vectorised over every leading axis.
"""

from __future__ import annotations

import logging
from typing import Any, Literal

import numpy as np
from pydantic import Field

from streamer.base import ComponentConfig
from streamer.pipelines.itemwise import ItemwiseStep
from streamer.registry import Component, register

log = logging.getLogger(__name__)
OUTPUT_SUFFIXES = ("times", "channels", "amplitudes", "hits")


class TimeOfFlightWindowingConfig(ComponentConfig):
    """Set every sample farther than ``half_window`` from a sample over threshold to the baseline."""

    type: Literal["TimeOfFlightWindowing"]
    field: str = Field(description="waveform field, shaped (..., channels, samples)")
    threshold: float = Field(gt=0, description="height above baseline that marks a pulse")
    baseline: float = 0.0
    half_window: int = Field(8, ge=0, description="samples kept each side of a sample over threshold")
    output_field: str | None = Field(None, description="write the result here instead of replacing `field`")

    def referenced_names(self) -> list[tuple[str, str]]:
        return [("field", self.field)]

    def output_names(self, names: set[str]) -> set[str]:
        return names | {self.output_field or self.field}


def window_mask(over: np.ndarray, half_window: int) -> np.ndarray:
    """True where a sample lies within ``half_window`` samples of a True in ``over`` (along the last axis)."""
    if half_window == 0:
        return over
    padded = np.zeros((*over.shape[:-1], over.shape[-1] + 2 * half_window + 1), dtype=np.int32)
    padded[..., half_window + 1:half_window + 1 + over.shape[-1]] = over
    counts = np.cumsum(padded, axis=-1)
    width = 2 * half_window + 1
    return (counts[..., width:] - counts[..., :-width]) > 0


class TimeOfFlightWindowing(ItemwiseStep):
    config: TimeOfFlightWindowingConfig

    def transform(self, data: dict[str, Any]) -> dict[str, Any]:
        cfg = self.config
        wave = self.field(data, cfg.field)
        keep = window_mask((wave - cfg.baseline) > cfg.threshold, cfg.half_window)
        data[cfg.output_field or cfg.field] = np.where(keep, wave, np.asarray(cfg.baseline, dtype=wave.dtype))
        return data


class TimeOfFlightPeakFinderConfig(ComponentConfig):
    """Local maxima over threshold become hits: arrival time (ns, sub-sample centroid), channel, amplitude.

    Outputs ``<prefix>_times`` (float32, NaN-padded), ``<prefix>_channels`` (int16, -1-padded),
    ``<prefix>_amplitudes`` (float32, NaN-padded), each ``max_hits`` long per event, and ``<prefix>_hits``
    (int32, hits found). Hits are ordered by channel, then time.
    """

    type: Literal["TimeOfFlightPeakFinder"]
    field: str = Field(description="waveform field, shaped (..., channels, samples)")
    threshold: float = Field(gt=0, description="height above baseline a peak must exceed")
    baseline: float = 0.0
    sample_interval_ns: float = Field(1.0, gt=0)
    time_offset_ns: float = 0.0
    max_hits: int = Field(256, ge=1, le=1 << 20, description="hits kept per event; more are counted, not kept")
    output_prefix: str | None = Field(None, description="prefix of the output names (default: `field`)")
    keep_waveform: bool = Field(False, description="keep the waveform field after finding peaks")

    def referenced_names(self) -> list[tuple[str, str]]:
        return [("field", self.field)]

    def output_names(self, names: set[str]) -> set[str]:
        prefix = self.output_prefix or self.field
        kept = names if self.keep_waveform else names - {self.field}
        return kept | {f"{prefix}_{suffix}" for suffix in OUTPUT_SUFFIXES}


def find_peaks(wave: np.ndarray, threshold: float) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """For waves shaped (n, channels, samples): (event, channel, centroid sample, amplitude) of every peak."""
    inner = wave[..., 1:-1]
    is_peak = (inner > threshold) & (inner > wave[..., :-2]) & (inner >= wave[..., 2:])
    event, channel, pos = np.nonzero(is_peak)
    pos = pos + 1
    left, centre, right = wave[event, channel, pos - 1], wave[event, channel, pos], wave[event, channel, pos + 1]
    curvature = left - 2.0 * centre + right
    with np.errstate(divide="ignore", invalid="ignore"):
        delta = np.where(curvature < 0, 0.5 * (left - right) / curvature, 0.0)
    return event, channel, pos + np.clip(delta, -0.5, 0.5), centre


class TimeOfFlightPeakFinder(ItemwiseStep):
    config: TimeOfFlightPeakFinderConfig

    def transform(self, data: dict[str, Any]) -> dict[str, Any]:
        cfg = self.config
        wave = self.field(data, cfg.field)
        if wave.ndim < 2:
            raise ValueError(f"{type(self).__name__}: field {cfg.field!r} needs (channels, samples) axes, "
                             f"got shape {wave.shape}")
        lead = wave.shape[:-2]
        flat = wave.reshape(-1, *wave.shape[-2:]).astype(np.float32) - np.float32(cfg.baseline)
        n = flat.shape[0]
        event, channel, sample, amplitude = find_peaks(flat, cfg.threshold)
        hits = np.bincount(event, minlength=n).astype(np.int32)
        rank = np.arange(len(event)) - np.searchsorted(event, event)  # position of each hit in its event
        kept = rank < cfg.max_hits
        if not kept.all():
            log.warning("%s: %d hits beyond max_hits=%d dropped", type(self).__name__, int((~kept).sum()),
                        cfg.max_hits)
        times = np.full((n, cfg.max_hits), np.nan, dtype=np.float32)
        channels = np.full((n, cfg.max_hits), -1, dtype=np.int16)
        amplitudes = np.full((n, cfg.max_hits), np.nan, dtype=np.float32)
        rows, cols = event[kept], rank[kept]
        times[rows, cols] = sample[kept] * cfg.sample_interval_ns + cfg.time_offset_ns
        channels[rows, cols] = channel[kept]
        amplitudes[rows, cols] = amplitude[kept]
        prefix = cfg.output_prefix or cfg.field
        if not cfg.keep_waveform:
            del data[cfg.field]
        data[f"{prefix}_times"] = times.reshape(*lead, cfg.max_hits)
        data[f"{prefix}_channels"] = channels.reshape(*lead, cfg.max_hits)
        data[f"{prefix}_amplitudes"] = amplitudes.reshape(*lead, cfg.max_hits)
        data[f"{prefix}_hits"] = hits.reshape(lead) if lead else np.int32(hits[0])
        return data


register("processing_steps", Component(TimeOfFlightWindowingConfig, TimeOfFlightWindowing))
register("processing_steps", Component(TimeOfFlightPeakFinderConfig, TimeOfFlightPeakFinder))
