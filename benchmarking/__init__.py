"""What benchmark.py runs beyond timing one step (benchmark.py itself holds that).

  gpu_suite        --suite=gpu: ours beside PyTorch on the same device
  compare_commits  --against=DIR: this checkout's speed beside another checkout's
  pillow_baseline  --input_only: one plain Pillow process doing the pipeline's work
"""
