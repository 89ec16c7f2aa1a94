"""LCLStreamer: event source -> processing steps -> serializer -> data handlers, MPI-parallel. Never imports Airflow."""
