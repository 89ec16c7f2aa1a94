"""Importing this module registers every built-in component type (each subpackage registers its own)."""

import streamer.handlers  # noqa: F401
import streamer.pipelines  # noqa: F401
import streamer.serializers  # noqa: F401
import streamer.sources  # noqa: F401
