"""Run a grid of training runs, locally or as a SLURM job array, and report the results.

  python sweep.py --config=configs/sweeps/lenet_pooling.py --workdir=sweeps/lenet
  python sweep.py --config=configs/sweeps/kernel_stride_pool.py:small --workdir=sweeps/ksp \
      --parallel=4          # 4 trials at once, each on its share of the local GPUs
                            # (more trials than GPUs: k to a GPU, 1/k of its memory each)
  python sweep.py --config=configs/sweeps/resnet_depth.py --workdir=sweeps/depth \
      --launcher=slurm --partition=gpu --gpus_per_task=1 --time=12:00:00
  python sweep.py --config=... --workdir=... --dry_run    # the plan or the sbatch script
  python sweep.py report --workdir=sweeps/lenet          # results.csv, results.md, plots/

A sweep file defines `get_config(arg)` and `get_sweep(arg)` (configs/hyper.py). Each trial
is its own train.py process in DIR/<its overrides>/, with its state in trial.json and its
output in train.log; the same command again skips finished trials and resumes the
others. See README.md, "Sweeps".
"""

import sys

from absl import flags

from lib import cli
from lib import workdir as workdir_lib
from sweeping import sweep_report
from sweeping import sweeps

FLAGS = flags.FLAGS
ACTIONS = ('run', 'report', 'trial')


def main(argv):
  action = argv[1] if len(argv) > 1 else 'run'
  if action not in ACTIONS or len(argv) > 2:
    cli.fail('sweep.py', f'unexpected arguments {argv[1:]}'
             + sweeps.did_you_mean(action, ACTIONS)
             + '; the actions are run (default), report and trial')
  if FLAGS.workdir is None:
    cli.fail('sweep.py', 'give --workdir=DIR (the sweep directory)')
  try:
    if action == 'report':
      print(sweep_report.report(FLAGS.workdir), end='')
      return
    if action == 'trial':  # one SLURM array task
      trials = sweeps.load_plan(FLAGS.workdir)['trials']
      if FLAGS.index is None or not 0 <= FLAGS.index < len(trials):
        raise sweeps.SweepError(f'--index={FLAGS.index}: give a trial index in '
                                f'[0, {len(trials)})')
      status = sweeps.run_trial(FLAGS.workdir, trials[FLAGS.index], sweeps.Children(),
                                allow_schedule_change=FLAGS.allow_schedule_change)
      print(f"{trials[FLAGS.index]['name']}: {status['state']}"
            + (f": {status['error']}" if status.get('error') else ''), flush=True)
      sys.exit(0 if status['state'] in ('done', 'stopped') else 1)
    if FLAGS.config is None:
      cli.fail('sweep.py', 'give --config=configs/sweeps/FILE.py[:arg] (the sweep file)')
    trials = sweeps.expand(FLAGS.config)
    slurm = sweeps.slurm_options(FLAGS.config) if FLAGS.launcher == 'slurm' else None
    no_failures = sweeps.launch(FLAGS.workdir, FLAGS.config, trials, FLAGS.parallel,
                                FLAGS.dry_run, slurm, lambda: sweep_report.report(FLAGS.workdir),
                                allow_schedule_change=FLAGS.allow_schedule_change)
    sys.exit(0 if no_failures else 1)  # stopped trials are not failures: rerun resumes
  except (sweeps.SweepError, workdir_lib.WorkdirError) as e:
    cli.fail('sweep.py', str(e))


if __name__ == '__main__':
  flags.DEFINE_string('config', None, 'sweep file: configs/sweeps/FILE.py[:arg]')
  flags.DEFINE_integer('index', None, '`sweep.py trial`: the trial to run (SLURM array task)')
  sweeps.define_launch_flags()
  cli.run(main, 'sweep.py', config_flag=None)
