"""Built-in event sources and data sources; importing this package registers them."""

from streamer.sources import (  # noqa: F401
    hdf5,
    indexed,
    live,
    psana,
    synthetic,
    synthetic_detectors,
    synthetic_scalars,
    synthetic_waveforms,
)
from streamer.sources.errors import SourceError, SourceTimeout  # noqa: F401
