"""The parts the entry points share; the top level holds what a user runs.

  experiment    checks without data, then one set-up (model, recipe, optimizer, steps)
  steps         the train state, the loss, the train and eval steps (pure, jitted once)
  recipes       what a model or config adds to the plain step (frozen and data-set
                parameters, mixup, the lookahead average)
  trained       a trained model for evaluate/predict/visualize: config, weights, posteriors
  run_contract  a workdir's saved config and run facts, and what a resume may change
  parallel      jax.distributed, the device mesh, explicit host-to-device copies,
                one step at a time on a multi-device CPU mesh
  compile_options  XLA's compiler options per platform (the CPU-only choices)
  optim         optimizers and learning-rate schedules from a config
  checkpoints   orbax checkpoints: latest, best, restore
  workdir       the run directory: lock, metrics.jsonl, JSON files
  events        TensorBoard event files (scalars, PNG images) without TensorFlow
  cli           one-line flag and config errors, quiet logging, compilation cache, cores
  formatting    tables (text, markdown, CSV) and numbers for people
  pictures      filters and feature maps as tiles (numpy)
"""
