"""What sweep.py and reproduce.py run (a paper's table runs as a sweep): `sweeps` (sweep
files to trials, run locally or as a SLURM job array), `sweep_report` (results and plots)."""
