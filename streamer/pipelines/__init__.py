"""Built-in processing steps; importing this package registers them."""

from streamer.pipelines import batch, peaknet, tof  # noqa: F401
