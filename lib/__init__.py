"""The parts the entry points share; the top level holds what a user runs.

  experiment    checks without data, then one set-up (model, optimizer, steps)
  parallel      jax.distributed and the device mesh
  optim         optimizers and learning-rate schedules from a config
  checkpoints   orbax checkpoints: latest, best, restore
  workdir       the run directory: lock, metrics.jsonl, JSON files
  events        TensorBoard event files without TensorFlow
  cli           one-line errors for flags and configs, quiet logging, compilation cache
  formatting    tables (text, markdown, CSV) and numbers for people
  sweep_report  a sweep's results table and plots
  paper_tables  the papers' published numbers, row by row
"""
