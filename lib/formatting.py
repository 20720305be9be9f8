"""Tables and numbers for people: what every entry point prints or writes as a report.

One renderer for the three forms the tools write: aligned text for a terminal, markdown
for a report or a README, CSV for a spreadsheet; and the number formats they share.
"""

import csv
import io


def table(header: list[str], rows: list[list], fmt: str = 'text', right_from: int = 0,
          footer: list | None = None) -> str:
  """`rows` under `header` as 'text' (columns aligned, right-aligned from column
  `right_from` on, a rule under the header and above `footer`), 'markdown' or 'csv'; None
  is an empty cell."""
  cells = [['' if c is None else str(c) for c in row]
           for row in rows + ([footer] if footer else [])]
  if fmt == 'csv':
    out = io.StringIO()
    csv.writer(out).writerows([header] + cells)
    return out.getvalue()
  if fmt == 'markdown':
    line = lambda row: '| ' + ' | '.join(c.replace('|', '/') for c in row) + ' |'
    return '\n'.join([line(header), '|' + '---|' * len(header)]
                     + [line(r) for r in cells]) + '\n'
  widths = [max(len(row[i]) for row in [header] + cells) for i in range(len(header))]
  line = lambda row: '  '.join(c.rjust(w) if i >= right_from else c.ljust(w)
                               for i, (c, w) in enumerate(zip(row, widths)))
  rule = '-' * len(line(header))
  body = [line(r) for r in cells]
  if footer:
    body.insert(len(body) - 1, rule)
  return '\n'.join([line(header), rule] + body) + '\n'


def write_csv(path: str, header: list[str], rows: list[list]):
  with open(path, 'w', newline='') as f:
    f.write(table(header, rows, 'csv'))


def duration(seconds: float) -> str:
  """'0m42s', '3m07s', '2h05m'."""
  seconds = int(seconds)
  return f'{seconds // 3600}h{seconds % 3600 // 60:02d}m' if seconds >= 3600 else \
      f'{seconds // 60}m{seconds % 60:02d}s'


def si(n) -> str:
  """61706 -> '61.7K', 4.09e9 -> '4.09G'; None -> ''."""
  if n is None:
    return ''
  for unit, scale in (('G', 1e9), ('M', 1e6), ('K', 1e3)):
    if n >= scale:
      return f'{n / scale:.3g}{unit}'
  return str(n)
