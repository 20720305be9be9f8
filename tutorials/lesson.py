"""What every lesson imports first (`import lesson`; the notebooks run in tutorials/):
the repository on the import path, figures shown as small PNGs, tables as markdown
(with an aligned text copy), the repository's programs run as a user runs them.

A figure goes through `show` (one the notebook drew) or `show_png` (a file the project's
code saved, as visualize.py's), so that a lesson looks the same whatever matplotlib
backend is active (visualization/plots.py selects Agg), and the committed notebooks stay
small: each PNG is drawn at 72 dpi and stored with a palette of at most 256 colours.
"""

import io
import os
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if ROOT not in sys.path:
  sys.path.insert(0, ROOT)

# pylint: disable=wrong-import-position
import IPython.display
import matplotlib.pyplot as plt
from PIL import Image

from lib import formatting

DPI = 72


def _small_png(image: Image.Image) -> bytes:
  buffer = io.BytesIO()
  image.convert('RGB').quantize(256).save(buffer, format='PNG', optimize=True)
  return buffer.getvalue()


def show(fig):
  """Display a matplotlib figure the lesson drew, then close it."""
  buffer = io.BytesIO()
  fig.savefig(buffer, format='png', dpi=DPI, bbox_inches='tight')
  plt.close(fig)
  IPython.display.display(IPython.display.Image(data=_small_png(Image.open(buffer))))


def show_png(path: str, width: int | None = None):
  """Display a PNG file that the project's code wrote (optionally scaled to `width`
  pixels)."""
  image = Image.open(path)
  if width and image.width > width:
    image = image.resize((width, round(image.height * width / image.width)), Image.LANCZOS)
  IPython.display.display(IPython.display.Image(data=_small_png(image)))


def run(program: str, *args, cwd: str = '.') -> str:
  """Run one of the repository's programs (visualize.py, summary.py ...) as a user would,
  in `cwd`; its standard output, or an error with its standard error."""
  result = subprocess.run([sys.executable, os.path.join(ROOT, program), *map(str, args)],
                          cwd=cwd, capture_output=True, text=True, check=False)
  if result.returncode:
    raise RuntimeError(f'{program} failed ({result.returncode}):\n{result.stderr[-3000:]}')
  return result.stdout


def table(header: list[str], rows: list[list]):
  """Display rows under a header as a table (lib/formatting.py's)."""
  _show_table(formatting.table(header, rows, 'markdown'), formatting.table(header, rows))


def layer_table(rows: list[dict]):
  """Display a layer table (models/layer_stats.py's rows) as summary.py prints it."""
  import summary  # pylint: disable=import-outside-toplevel  (JAX and the zoo: when asked)
  _show_table(summary.format_rows(rows, 'markdown'), summary.format_rows(rows, 'table'))


def _show_table(markdown: str, text: str):
  """A table as markdown, with its aligned text for a reader that renders no markdown."""
  IPython.display.display({'text/markdown': markdown, 'text/plain': text}, raw=True)
