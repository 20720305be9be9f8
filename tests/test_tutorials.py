"""The tutorials (tutorials/, README "Tutorials"): every lesson runs from a clean kernel
without an error or a failed assert, and its committed notebook is its current source,
executed (`python -m tutorials.build` writes it)."""

import os

import nbformat
import pytest

from tutorials import build

LESSONS = build.lessons()
NAMES = [os.path.splitext(os.path.basename(source))[0] for source in LESSONS]
REBUILD = 'run python -m tutorials.build {} and commit the notebook'


def code_cells(nb):
  return [cell for cell in nb.cells if cell.cell_type == 'code']


def outputs_kind(nb):
  """Each code cell's outputs as their kinds: ('stream', 'stdout'), ('display_data',
  ('image/png', 'text/plain')) ... (what a run on another processor keeps, where the
  digits of a trained model's numbers may move)."""
  return [[(o.output_type, o.get('name') or tuple(sorted(o.get('data', {}))))
           for o in cell.outputs] for cell in code_cells(nb)]


def test_every_lesson_has_its_notebook_and_every_notebook_its_lesson():
  notebooks = sorted(os.path.basename(p) for p in os.listdir(build.HERE)
                     if p.endswith('.ipynb'))
  assert notebooks == [name + '.ipynb' for name in NAMES]
  assert len(NAMES) >= 6


@pytest.mark.parametrize('source', LESSONS, ids=NAMES)
def test_the_committed_notebook_is_the_lesson_executed(source):
  name = os.path.splitext(os.path.basename(source))[0]
  committed = nbformat.read(build.notebook_path(source), as_version=4)
  nbformat.validate(committed)
  # An edited lesson whose notebook was not regenerated says something else.
  assert build.cells(committed) == build.cells(build.read_source(source)), \
      REBUILD.format(name)
  cells = code_cells(committed)
  assert [cell.execution_count for cell in cells] == list(range(1, len(cells) + 1)), \
      REBUILD.format(name)  # every cell executed, once, in order
  assert not [o for cell in cells for o in cell.outputs if o.output_type == 'error']
  assert cells[-1].source.count('assert') >= 3  # it ends by checking what it claims


@pytest.mark.parametrize('source', LESSONS, ids=NAMES)
def test_the_lesson_runs_from_a_clean_kernel(source):
  """Executed as `python -m tutorials.build` executes it (a failing cell, a failed
  assert included, raises), it shows what the committed notebook shows: the same
  outputs of each cell, figures where it has figures."""
  executed = build.execute(source)
  committed = nbformat.read(build.notebook_path(source), as_version=4)
  assert outputs_kind(executed) == outputs_kind(committed)
  assert any(('display_data', ('image/png', 'text/plain')) in cell
             for cell in outputs_kind(executed))  # every lesson has a figure


def test_an_unknown_lesson_is_refused(capsys):
  assert build.main(['07_nothing_here']) == 2
  assert 'no lesson 07_nothing_here' in capsys.readouterr().err
