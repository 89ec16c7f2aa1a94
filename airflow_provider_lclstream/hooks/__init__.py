"""Hooks: one per service, each turning an Airflow connection into that service's client library."""
