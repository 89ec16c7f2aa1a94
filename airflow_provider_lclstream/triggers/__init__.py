"""Triggers: asyncio, never blocking the triggerer's loop (Kafka runs on its own thread)."""
