"""Fixtures shared by every test package: one real Kafka broker and one real SLURM cluster per run,
started only when a test asks for them."""

pytest_plugins = ["tests.fixtures.kafka", "tests.fixtures.slurm"]
