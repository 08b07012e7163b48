"""Quote tables into a notebook's Markdown cells: every `<!-- table: PATH -->` ... `<!-- /table -->` block gets PATH's
text (PATH relative to the repository), so the README (`make readme` renders nbs/index.ipynb) shows the numbers that
`gdml tables` wrote. Usage: python tools/quote_tables.py nbs/index.ipynb"""
import json
import os
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BLOCK = re.compile(r'(<!-- table: (\S+) -->\n).*?(<!-- /table -->)', re.S)


def quote(text: str) -> str:
    "`text` with every table block filled with its file's text."
    def body(m):
        path = ROOT/m.group(2)
        if not path.is_file(): sys.exit(f"quote_tables: {m.group(2)} is not a file (a table block names a table under the repository)")
        return m.group(1) + '\n' + path.read_text().strip() + '\n\n' + m.group(3)
    return BLOCK.sub(body, text)


def quote_notebook(path: Path) -> None:
    "Fill the blocks of `path`'s Markdown cells, writing the notebook whole (temp file, then rename)."
    nb = json.loads(path.read_text())
    for cell in nb['cells']:
        if cell['cell_type'] == 'markdown': cell['source'] = quote(''.join(cell['source'])).splitlines(keepends=True)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(nb, indent=1, ensure_ascii=False) + '\n')
    os.replace(tmp, path)


if __name__ == '__main__':
    if len(sys.argv) != 2 or not sys.argv[1].endswith('.ipynb'): sys.exit("usage: python tools/quote_tables.py NOTEBOOK.ipynb")
    quote_notebook(Path(sys.argv[1]))
