"""Whether the fast lane reaches every module: `python -m tests.fast_lane_coverage` runs
`pytest -m fast` under coverage.py (the tests' process and each command it runs through
tests/prewarmed.py) and names every module of the product (the tracked .py files outside
tests/ and tutorials/) none of whose functions ran. Exit status 1 when there is one.

A module counts as reached when a line inside one of its functions ran: importing it is
not enough. Slower than the lane itself (one process, under a tracer).
"""

import ast
import os
import subprocess
import sys
import tempfile

import coverage

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def product_files() -> list[str]:
  paths = subprocess.run(['git', 'ls-files', '*.py'], cwd=ROOT, capture_output=True,
                         text=True, check=True).stdout.split()
  return [p for p in paths if not p.startswith(('tests/', 'tutorials/'))]


def function_lines(path: str) -> set[int]:
  """The lines of the statements inside the functions of `path`, docstrings left out."""
  with open(os.path.join(ROOT, path)) as f:
    tree = ast.parse(f.read())
  lines = set()
  for node in ast.walk(tree):
    if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)):
      body = node.body if isinstance(node.body, list) else [node.body]
      for statement in body:
        if not (isinstance(statement, ast.Expr) and isinstance(statement.value, ast.Constant)):
          lines.update(range(statement.lineno, statement.end_lineno + 1))
  return lines


def main() -> int:
  with tempfile.TemporaryDirectory(prefix='fast-lane-coverage-') as scratch:
    rc = os.path.join(scratch, 'coveragerc')
    with open(rc, 'w') as f:
      f.write(f'[run]\nparallel = True\nsource = {ROOT}\n'
              f'data_file = {os.path.join(scratch, ".coverage")}\n'
              'omit =\n  */tests/*\n  */tutorials/*\n')
    env = {**os.environ, 'COVERAGE_PROCESS_START': rc}
    lane = subprocess.run([sys.executable, '-m', 'coverage', 'run', f'--rcfile={rc}', '-m',
                           'pytest', '-q', '-m', 'fast', '-n', '0', 'tests'], cwd=ROOT, env=env)
    if lane.returncode:
      print(f'the fast lane failed (exit {lane.returncode})')
      return 1
    cov = coverage.Coverage(config_file=rc)
    cov.combine()
    data = cov.get_data()
    ran = {os.path.relpath(f, ROOT): set(data.lines(f) or ()) for f in data.measured_files()}
  product = {path: function_lines(path) for path in product_files()}
  missing = [p for p, lines in product.items() if lines and not lines & ran.get(p, set())]
  for path in missing:
    print(f'no function of {path} ran in the fast lane')
  print(f'{len(product) - len(missing)} of {len(product)} modules reached')
  return 1 if missing else 0


if __name__ == '__main__':
  sys.exit(main())
