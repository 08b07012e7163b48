"""Quote tables into a notebook's Markdown cells or a Markdown page: every `<!-- table: PATH -->` ... `<!-- /table -->`
block gets PATH's text (PATH relative to the repository), so the README (`make readme` renders nbs/index.ipynb) and the
docs pages show the numbers that `gdml tables` wrote; every `<!-- profiles -->` ... `<!-- /profiles -->` block gets
`gdml.protocol.profiles_markdown()`. Usage: python tools/quote_tables.py nbs/index.ipynb nbs/protocols.md ..."""
import json
import os
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BLOCK = re.compile(r'(<!-- table: (\S+) -->\n).*?(<!-- /table -->)', re.S)
PROFILES = re.compile(r'(<!-- profiles -->\n).*?(<!-- /profiles -->)', re.S)


def quote(text: str) -> str:
    "`text` with every table block filled with its file's text."
    def body(m):
        path = ROOT/m.group(2)
        if not path.is_file(): sys.exit(f"quote_tables: {m.group(2)} is not a file (a table block names a table under the repository)")
        return m.group(1) + '\n' + path.read_text().strip() + '\n\n' + m.group(3)
    text = BLOCK.sub(body, text)
    if PROFILES.search(text):
        from gdml.protocol import profiles_markdown
        text = PROFILES.sub(lambda m: m.group(1) + profiles_markdown() + m.group(2), text)
    return text


def quote_notebook(path: Path) -> None:
    "Fill the blocks of `path`'s Markdown cells, writing the notebook whole (temp file, then rename)."
    nb = json.loads(path.read_text())
    for cell in nb['cells']:
        if cell['cell_type'] == 'markdown': cell['source'] = quote(''.join(cell['source'])).splitlines(keepends=True)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(nb, indent=1, ensure_ascii=False) + '\n')
    os.replace(tmp, path)


def quote_page(path: Path) -> None:
    "Fill the blocks of the Markdown page `path`, writing it whole (temp file, then rename)."
    text = path.read_text(); new = quote(text)
    if new == text: return
    tmp = path.with_name(f".{path.name}.tmp"); tmp.write_text(new); os.replace(tmp, path)


if __name__ == '__main__':
    paths = [Path(a) for a in sys.argv[1:]]
    if not paths or any(p.suffix not in ('.ipynb', '.md') for p in paths):
        sys.exit("usage: python tools/quote_tables.py NOTEBOOK.ipynb|PAGE.md ...")
    for p in paths: quote_notebook(p) if p.suffix == '.ipynb' else quote_page(p)
