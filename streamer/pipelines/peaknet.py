"""``PeaknetPreprocessingPipeline``: centre-pad or crop images to a fixed height/width for PeakNet."""

from __future__ import annotations

from typing import Any, Literal

import numpy as np
from pydantic import Field

from streamer.base import ComponentConfig
from streamer.pipelines.itemwise import ItemwiseStep
from streamer.registry import Component, register


class PeaknetPreprocessingPipelineConfig(ComponentConfig):
    """Resize the last two axes of each listed field to ``target_height`` x ``target_width`` (centred)."""

    type: Literal["PeaknetPreprocessingPipeline"]
    fields: list[str] = Field(min_length=1, description="image fields to resize (last two axes are height, width)")
    target_height: int = Field(ge=1, le=1 << 15)
    target_width: int = Field(ge=1, le=1 << 15)
    add_channel_dim: bool = Field(False, description="insert a channel axis of length 1 before height, width")
    pad_value: float = 0.0
    dtype: Literal["keep", "float32", "float16"] = "keep"

    def referenced_names(self) -> list[tuple[str, str]]:
        return [(f"fields[{i}]", name) for i, name in enumerate(self.fields)]

    def output_names(self, names: set[str]) -> set[str]:
        return names


def centre_slices(size: int, target: int) -> tuple[slice, slice]:
    """(source, destination) slices that centre-crop (size > target) or centre-pad (size < target)."""
    if size >= target:
        start = (size - target) // 2
        return slice(start, start + target), slice(0, target)
    start = (target - size) // 2
    return slice(0, size), slice(start, start + size)


def pad_or_crop(image: np.ndarray, height: int, width: int, pad_value: float = 0.0,
                dtype: np.dtype | None = None) -> np.ndarray:
    if image.ndim < 2:
        raise ValueError(f"an image needs at least 2 axes, got shape {image.shape}")
    src_y, dst_y = centre_slices(image.shape[-2], height)
    src_x, dst_x = centre_slices(image.shape[-1], width)
    out = np.full((*image.shape[:-2], height, width), pad_value, dtype=dtype or image.dtype)
    out[..., dst_y, dst_x] = image[..., src_y, src_x]
    return out


class PeaknetPreprocessingPipeline(ItemwiseStep):
    config: PeaknetPreprocessingPipelineConfig

    def transform(self, data: dict[str, Any]) -> dict[str, Any]:
        cfg = self.config
        dtype = None if cfg.dtype == "keep" else np.dtype(cfg.dtype)
        for name in cfg.fields:
            image = pad_or_crop(self.field(data, name), cfg.target_height, cfg.target_width, cfg.pad_value, dtype)
            data[name] = image[..., np.newaxis, :, :] if cfg.add_channel_dim else image
        return data


register("processing_steps", Component(PeaknetPreprocessingPipelineConfig, PeaknetPreprocessingPipeline))
