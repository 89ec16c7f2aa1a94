"""``Psana1EventSource`` / ``Psana2EventSource``: read LCLS runs through psana, imported only when run.

Configs validate anywhere; constructing the source where psana is not installed raises a SourceError whose
one sentence says psana is needed and how to get it. (psana is not installable here, so the reading code
below is exercised only at the facility.)
"""

from __future__ import annotations

import importlib
from collections.abc import Iterator
from typing import Any, ClassVar, Literal

from pydantic import Field

from streamer.base import ComponentConfig, Event, EventSource, RunContext
from streamer.registry import Component, register
from streamer.sources.errors import SourceError
from streamer.sources.indexed import INDEX_DERIVED_TYPES, build_indexed_sources

PSANA_HELP = {
    1: "run lclstreamer inside the LCLS-I psana conda environment "
       "(`source /sdf/group/lcls/ds/ana/sw/conda1/manage/bin/psconda.sh`) or `conda install -c lcls-i psana`",
    2: "run lclstreamer inside the LCLS-II psana conda environment "
       "(`source /sdf/group/lcls/ds/ana/sw/conda2/manage/bin/psconda.sh`) or `conda install -c lcls-ii psana`",
}


def import_psana(source_type: str, generation: int) -> Any:
    try:
        return importlib.import_module("psana")
    except ImportError:
        raise SourceError(f"{source_type} needs the psana package, which is not installed here: "
                          f"{PSANA_HELP[generation]}.") from None


class PsanaDetectorConfig(ComponentConfig):
    """One psana detector of the run, e.g. ``jungfrau4M`` or an EPICS PV name."""

    type: Literal["PsanaDetector"]
    psana_name: str = Field(min_length=1, description="detector or alias name as psana knows it")
    mode: Literal["raw", "calib", "image", "value"] = Field(
        "calib", description="raw/calib/image for area detectors, value for scalars and PVs")


class _PsanaSourceConfig(ComponentConfig):
    supported_data_sources: ClassVar[frozenset[str] | None] = INDEX_DERIVED_TYPES | {"PsanaDetector"}

    experiment: str = Field(min_length=1, description="experiment name, e.g. mfxp1001121")
    run: int = Field(ge=0)
    data_dir: str | None = Field(None, description="xtc directory when not the facility default")


class Psana1EventSourceConfig(_PsanaSourceConfig):
    """An LCLS-I run read with psana1 in indexed mode (random access by event)."""

    type: Literal["Psana1EventSource"]


class Psana2EventSourceConfig(_PsanaSourceConfig):
    """An LCLS-II run read with psana2; psana2 cannot count events up front, so give the number to read."""

    type: Literal["Psana2EventSource"]
    number_of_events: int = Field(ge=0, description="events to read from the start of the run")


class _PsanaEventSource(EventSource):
    generation: ClassVar[int] = 1

    def __init__(self, config: ComponentConfig, data_sources: dict[str, ComponentConfig],
                 context: RunContext) -> None:
        super().__init__(config, data_sources, context)
        self.psana = import_psana(config.type, self.generation)  # type: ignore[attr-defined]
        self.indexed = build_indexed_sources(data_sources, context)
        self.detectors = {name: cfg for name, cfg in data_sources.items() if isinstance(cfg, PsanaDetectorConfig)}

    def _event_dict(self, index: int, read: dict[str, Any]) -> Event:
        event = dict(read)
        for name, source in self.indexed.items():
            event[name] = source.extract(index)
        return {name: event[name] for name in self.data_sources}


class Psana1EventSource(_PsanaEventSource):
    generation = 1

    def __init__(self, config: ComponentConfig, data_sources: dict[str, ComponentConfig],
                 context: RunContext) -> None:
        super().__init__(config, data_sources, context)
        cfg: Psana1EventSourceConfig = self.config  # type: ignore[assignment]
        spec = f"exp={cfg.experiment}:run={cfg.run}:idx" + (f":dir={cfg.data_dir}" if cfg.data_dir else "")
        self.run = next(self.psana.DataSource(spec).runs())
        self.times = self.run.times()
        self.dets = {name: self.psana.Detector(d.psana_name) for name, d in self.detectors.items()}

    def number_of_events(self) -> int:
        return len(self.times)

    def events(self, indices: range) -> Iterator[Event]:
        for index in indices:
            evt = self.run.event(self.times[index])
            read = {name: self._read(det, self.detectors[name].mode, evt) for name, det in self.dets.items()}
            yield self._event_dict(index, read)

    @staticmethod
    def _read(det: Any, mode: str, evt: Any) -> Any:
        if mode == "value":  # EPICS PVs: psana1's epics detectors are called without the event
            try:
                return det(evt)
            except TypeError:
                return det()
        return getattr(det, mode)(evt)


class Psana2EventSource(_PsanaEventSource):
    generation = 2

    def __init__(self, config: ComponentConfig, data_sources: dict[str, ComponentConfig],
                 context: RunContext) -> None:
        super().__init__(config, data_sources, context)
        cfg: Psana2EventSourceConfig = self.config  # type: ignore[assignment]
        kwargs: dict[str, Any] = {"exp": cfg.experiment, "run": cfg.run, "max_events": cfg.number_of_events}
        if cfg.data_dir:
            kwargs["dir"] = cfg.data_dir
        self.run = next(self.psana.DataSource(**kwargs).runs())
        self.dets = {name: self.run.Detector(d.psana_name) for name, d in self.detectors.items()}

    def number_of_events(self) -> int:
        return self.config.number_of_events  # type: ignore[attr-defined]

    def events(self, indices: range) -> Iterator[Event]:
        wanted = iter(indices)
        target = next(wanted, None)
        for index, evt in enumerate(self.run.events()):
            if target is None:
                return
            if index != target:
                continue  # psana2 reads sequentially; other ranks take the events skipped here
            read = {}
            for name, det in self.dets.items():
                mode = self.detectors[name].mode
                read[name] = det(evt) if mode == "value" else getattr(det.raw, mode)(evt)
            yield self._event_dict(index, read)
            target = next(wanted, None)


register("data_sources", Component(PsanaDetectorConfig, None))
register("event_sources", Component(Psana1EventSourceConfig, Psana1EventSource))
register("event_sources", Component(Psana2EventSourceConfig, Psana2EventSource))
