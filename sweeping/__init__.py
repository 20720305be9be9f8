"""Sweeps: what sweep.py and reproduce.py run (a paper's table is run as a sweep).

  sweeps        sweep files to trials, run locally or as a SLURM job array
  sweep_report  a sweep's results table and plots
"""
