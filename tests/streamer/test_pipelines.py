"""Processing steps: batching, PeakNet pad/crop, time-of-flight windowing and peak finding, composition."""

from __future__ import annotations

import numpy as np
import pytest

from streamer.base import RunContext
from streamer.pipelines.batch import BatchProcessingPipeline, BatchProcessingPipelineConfig
from streamer.pipelines.items import BatchItem, EventItem
from streamer.pipelines.peaknet import (
    PeaknetPreprocessingPipeline,
    PeaknetPreprocessingPipelineConfig,
    pad_or_crop,
)
from streamer.pipelines.tof import (
    TimeOfFlightPeakFinder,
    TimeOfFlightPeakFinderConfig,
    TimeOfFlightWindowing,
    TimeOfFlightWindowingConfig,
    window_mask,
)

CONTEXT = RunContext("exp=pipe:run=1")


def events(n: int, start: int = 0) -> list[EventItem]:
    return [EventItem({"img": np.full((2, 3), i, np.uint16), "pid": np.int64(i), "name": "run"}, i)
            for i in range(start, start + n)]


def batcher(size: int) -> BatchProcessingPipeline:
    return BatchProcessingPipeline(BatchProcessingPipelineConfig(type="BatchProcessingPipeline", batch_size=size),
                                   CONTEXT)


def test_batches_stack_fields_and_flush_the_last_partial_batch() -> None:
    batches = list(batcher(4).process(iter(events(10))))
    assert [b.event_count for b in batches] == [4, 4, 2]
    assert all(isinstance(b, BatchItem) for b in batches)
    assert batches[0]["img"].shape == (4, 2, 3) and batches[0]["img"].dtype == np.uint16
    np.testing.assert_array_equal(np.concatenate([b["pid"] for b in batches]), np.arange(10))
    np.testing.assert_array_equal(np.concatenate([b.indices for b in batches]), np.arange(10))
    assert batches[2]["name"].tolist() == [b"run", b"run"]


def test_rebatching_batches_keeps_every_event_once() -> None:
    first = list(batcher(3).process(iter(events(11))))
    second = list(batcher(5).process(iter(first)))
    assert [b.event_count for b in second] == [5, 5, 1]
    np.testing.assert_array_equal(np.concatenate([b["pid"] for b in second]), np.arange(11))
    assert list(batcher(5).process(iter([]))) == []


def test_pad_or_crop_centres_the_image() -> None:
    image = np.arange(4 * 6).reshape(4, 6)
    padded = pad_or_crop(image, 6, 8, pad_value=-1)
    assert padded.shape == (6, 8)
    np.testing.assert_array_equal(padded[1:5, 1:7], image)
    assert (padded[0] == -1).all() and (padded[:, 0] == -1).all()
    cropped = pad_or_crop(image, 2, 2)
    np.testing.assert_array_equal(cropped, image[1:3, 2:4])
    mixed = pad_or_crop(image, 2, 10)
    np.testing.assert_array_equal(mixed[:, 2:8], image[1:3])


def test_peaknet_step_on_events_and_batches() -> None:
    config = PeaknetPreprocessingPipelineConfig(type="PeaknetPreprocessingPipeline", fields=["img"],
                                                target_height=4, target_width=5, add_channel_dim=True,
                                                dtype="float32")
    step = PeaknetPreprocessingPipeline(config, CONTEXT)
    (event,) = step.process(iter(events(1, start=3)))
    assert isinstance(event, EventItem) and event.index == 3
    assert event["img"].shape == (1, 4, 5) and event["img"].dtype == np.float32
    (batch,) = step.process(batcher(3).process(iter(events(3))))
    assert batch["img"].shape == (3, 1, 4, 5)
    np.testing.assert_array_equal(batch.indices, [0, 1, 2])
    with pytest.raises(KeyError, match="no field 'nope'"):
        list(PeaknetPreprocessingPipeline(config.model_copy(update={"fields": ["nope"]}), CONTEXT)
             .process(iter(events(1))))


def waveform(channels: int, samples: int, pulses: dict[int, list[float]], noise: float = 1.0,
             seed: int = 0) -> np.ndarray:
    """Noise plus Gaussian pulses (sigma 1.5 samples, height 200) at the given sub-sample positions."""
    rng = np.random.default_rng(seed)
    wave = rng.normal(0.0, noise, size=(channels, samples))
    x = np.arange(samples)
    for channel, centres in pulses.items():
        for centre in centres:
            wave[channel] += 200.0 * np.exp(-((x - centre) ** 2) / (2 * 1.5**2))
    return np.rint(wave).astype(np.int16)


def test_window_mask_keeps_samples_near_pulses() -> None:
    over = np.zeros((1, 20), bool)
    over[0, 10] = True
    np.testing.assert_array_equal(np.nonzero(window_mask(over, 2))[1], [8, 9, 10, 11, 12])
    over[0, 0] = True
    assert window_mask(over, 3)[0, :4].all()


def test_windowing_then_peak_finding_gives_arrival_times_and_channels() -> None:
    pulses = {0: [100.0, 400.25], 2: [250.5]}
    wave = waveform(3, 600, pulses)
    windowing = TimeOfFlightWindowing(TimeOfFlightWindowingConfig(
        type="TimeOfFlightWindowing", field="tof", threshold=20, half_window=6), CONTEXT)
    finder = TimeOfFlightPeakFinder(TimeOfFlightPeakFinderConfig(
        type="TimeOfFlightPeakFinder", field="tof", threshold=20, sample_interval_ns=0.5, time_offset_ns=10.0,
        max_hits=8, output_prefix="e"), CONTEXT)
    item = EventItem({"tof": wave, "pid": np.int64(5)}, 5)
    (windowed,) = windowing.process(iter([item]))
    assert (windowed["tof"][1] == 0).all(), "a channel without pulses is all baseline"
    assert (windowed["tof"][0, :80] == 0).all() and (windowed["tof"][0, 95:106] != 0).any()
    (hits,) = finder.process(iter([windowed]))
    assert "tof" not in hits and hits.index == 5
    assert hits["e_hits"] == 3
    expected = sorted((c, t) for c, ts in pulses.items() for t in ts)
    got_channels = hits["e_channels"][:3].tolist()
    assert got_channels == [c for c, _ in expected]
    np.testing.assert_allclose(hits["e_times"][:3], [10.0 + 0.5 * t for _, t in expected], atol=0.25)
    assert np.isnan(hits["e_times"][3:]).all() and (hits["e_channels"][3:] == -1).all()


def test_peak_finder_on_batches_matches_events_and_caps_hits() -> None:
    waves = [waveform(2, 300, {0: [50.0 + 10 * i], 1: [100.0, 150.0, 200.0]}, seed=i) for i in range(4)]
    config = TimeOfFlightPeakFinderConfig(type="TimeOfFlightPeakFinder", field="w", threshold=30, max_hits=3,
                                          keep_waveform=True)
    finder = TimeOfFlightPeakFinder(config, CONTEXT)
    items = [EventItem({"w": w}, i) for i, w in enumerate(waves)]
    per_event = list(finder.process(iter(items)))
    (batch,) = finder.process(batcher(4).process(iter(items)))
    assert batch["w_times"].shape == (4, 3) and batch["w_hits"].tolist() == [4, 4, 4, 4]
    np.testing.assert_array_equal(batch["w_times"], np.stack([e["w_times"] for e in per_event]))
    np.testing.assert_array_equal(batch["w"], np.stack(waves))
