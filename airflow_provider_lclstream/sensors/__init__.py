"""Sensors: deferrable by default, poke mode too."""
