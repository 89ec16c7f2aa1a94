"""Psi-k: one folder per job, local and SLURM backends, signed callbacks; Psik-API is its REST face."""
