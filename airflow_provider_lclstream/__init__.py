"""Apache Airflow provider for LCLStream."""

from __future__ import annotations

from typing import Any

__version__ = "0.1.0"


def get_provider_info() -> dict[str, Any]:
    return {
        "package-name": "airflow-provider-lclstream",
        "name": "LCLStream",
        "description": "Stream detector data from facility beamlines into HPC jobs while the run is taking data.",
        "versions": [__version__],
    }
