"""The parts the entry points share; the top level holds what a user runs.

  experiment    checks without data, then one set-up (model, optimizer, steps)
  trained       a trained model for evaluate/predict/visualize: config, weights, posteriors
  parallel      jax.distributed, the device mesh, explicit host-to-device copies
  optim         optimizers and learning-rate schedules from a config
  checkpoints   orbax checkpoints: latest, best, restore
  workdir       the run directory: lock, metrics.jsonl, JSON files
  events        TensorBoard event files (scalars, images) without TensorFlow
  cli           one-line errors for flags and configs, quiet logging, compilation cache
  formatting    tables (text, markdown, CSV) and numbers for people
  pictures      filters and feature maps as tiles, PNG bytes (numpy and Pillow)
"""
