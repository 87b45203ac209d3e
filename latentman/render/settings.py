"""The ``render:`` section of config.yaml as a typed object, built once from the validated config."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

IUV_SOURCES = ("exact", "densepose")


@dataclass(frozen=True)
class RenderSettings:
    """Render settings; the ranges and choices are checked by the config schema when the workflow
    starts (schemas/config.schema.yaml), not here again."""

    resolution: int = 512
    backend: str = "auto"
    iuv: str = "exact"
    control_encoding: str = "near_bright"
    yfov_deg: float = 60.0
    fill: float = 0.8
    elevation_deg: float = 5.0
    # fixed | follow | auto (latentman.render.camera.choose_camera). config.yaml ships auto; the default
    # here is the camera from before the key existed, which the toy model's training renders
    # (tools/train_toy_model.py) were made with and must keep to stay reproducible.
    camera_mode: str = "fixed"
    auto_follow_below: float = 0.4
    min_body_pixels: int = 64
    max_fit_error_mm: float = 80.0

    @classmethod
    def from_config(cls, render: Mapping[str, Any]) -> RenderSettings:
        """Settings from a validated ``render:`` mapping (every key present, as config.yaml has it)."""
        camera = render["camera"]
        return cls(
            resolution=int(render["resolution"]),
            backend=str(render["backend"]),
            iuv=str(render["iuv"]),
            control_encoding=str(render["control_encoding"]),
            yfov_deg=float(camera["yfov_deg"]),
            fill=float(camera["fill"]),
            elevation_deg=float(camera["elevation_deg"]),
            # Keys added later: a config written before them keeps working with the defaults.
            camera_mode=str(camera.get("mode", cls.camera_mode)),
            auto_follow_below=float(camera.get("auto_follow_below", cls.auto_follow_below)),
            min_body_pixels=int(render["min_body_pixels"]),
            max_fit_error_mm=float(render["max_fit_error_mm"]),
        )
