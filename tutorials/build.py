"""Execute every lesson and write its notebook: `python -m tutorials.build [NAME ...]`.

A lesson's source is a jupytext percent-format script, tutorials/NN_name.py: the file to
edit, which diffs and reviews as code. This executes it from a clean kernel, in
tutorials/, and writes the executed notebook beside it, NN_name.ipynb, outputs and
figures included, which GitHub renders for a reader who runs nothing. The notebook is
written to diff cleanly when run again: cell ids by position, no execution timings, a
fixed kernel description, and lessons whose outputs hold no times or addresses (their
seeds fixed). tests/test_tutorials.py executes each source and checks that the committed
notebook holds the source's cells, so an edited lesson needs this run again.

NAME: a lesson, as 01_convolution, 01_convolution.py or its path (default: all).
"""

import glob
import os
import sys
import time

import jupytext
import nbclient
from nbclient.exceptions import CellExecutionError
import nbformat

HERE = os.path.dirname(os.path.abspath(__file__))
KERNELSPEC = {'name': 'python3', 'display_name': 'Python 3', 'language': 'python'}
# Tracebacks as plain text (a failing cell reads in a log), and only the kernel's errors
# on the terminal.
KERNEL_OPTIONS = ['--InteractiveShell.colors=nocolor', '--IPKernelApp.log_level=ERROR']


def lessons() -> list[str]:
  """The lessons' sources, in order: tutorials/NN_*.py."""
  return sorted(glob.glob(os.path.join(HERE, '[0-9][0-9]_*.py')))


def notebook_path(source: str) -> str:
  return os.path.splitext(source)[0] + '.ipynb'


def read_source(source: str) -> nbformat.NotebookNode:
  """The lesson's cells as a notebook, not yet executed, with stable metadata."""
  nb = jupytext.read(source, fmt='py:percent')
  nb.metadata = nbformat.from_dict({'kernelspec': KERNELSPEC})
  for i, cell in enumerate(nb.cells):
    cell.id = f'cell-{i}'
    cell.metadata = nbformat.from_dict({})
  return nb


def cells(nb) -> list[tuple[str, str]]:
  """What a lesson says: each cell's type and source."""
  return [(cell.cell_type, cell.source) for cell in nb.cells]


def execute(source: str, timeout: int = 600) -> nbformat.NotebookNode:
  """The lesson executed from a fresh kernel (this Python's) in tutorials/; raises
  nbclient's CellExecutionError at a cell that fails, a failed assert included."""
  nb = read_source(source)
  # (coalesce_streams: a cell's printed lines as one output, however the kernel flushed)
  nbclient.NotebookClient(nb, timeout=timeout, kernel_name='python3', record_timing=False,
                          coalesce_streams=True, resources={'metadata': {'path': HERE}},
                          extra_arguments=KERNEL_OPTIONS).execute()
  return nb


def main(argv: list[str]) -> int:
  chosen = lessons()
  if argv:
    name = lambda path: os.path.splitext(os.path.basename(path))[0]
    names = {name(s): s for s in chosen}
    unknown = [a for a in argv if name(a) not in names]
    if unknown:
      print(f'tutorials.build: no lesson {", ".join(unknown)} (lessons: '
            f'{", ".join(names)})', file=sys.stderr)
      return 2
    chosen = [names[name(a)] for a in argv]
  started = time.time()
  for source in chosen:
    began = time.time()
    try:
      nb = execute(source)
    except CellExecutionError as e:
      print(f'tutorials.build: {os.path.relpath(source)} failed (its notebook is left as '
            f'it was):\n{e}', file=sys.stderr)
      return 1
    nbformat.write(nb, notebook_path(source))
    print(f'{os.path.relpath(notebook_path(source))}: {time.time() - began:.0f} s',
          flush=True)
  print(f'{len(chosen)} notebooks in {time.time() - started:.0f} s')
  return 0


if __name__ == '__main__':
  sys.exit(main(sys.argv[1:]))
