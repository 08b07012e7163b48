"""The README's protocol table is the one `gdml.protocol` renders (one source of defaults).

README.md is rendered from nbs/index.ipynb (`make readme`; tests/test_docs.py checks the two agree), so the table
is checked in both: in the notebook, where it is edited, and in the README, which is what readers see. So are the
results tables the README quotes (`make readme` copies them in with tools/quote_tables.py)."""
import json
import re
import sys
from pathlib import Path

import pytest

from gdml.protocol import profiles_markdown

sys.path.insert(0, str(Path(__file__).resolve().parents[1]/'tools'))
import quote_tables  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
README = ROOT/'README.md'
INDEX = ROOT/'nbs'/'index.ipynb'


def markdown_of_index() -> str:
    "The markdown cells of nbs/index.ipynb, joined as nbconvert's markdown exporter joins them."
    cells = json.loads(INDEX.read_text())['cells']
    return '\n\n'.join(''.join(c['source']) for c in cells if c['cell_type'] == 'markdown')


def profile_table(text: str) -> str:
    assert text.count('<!-- profiles -->\n') == 1 and text.count('<!-- /profiles -->') == 1, "one pair of profile markers"
    return text.split('<!-- profiles -->\n', 1)[1].split('<!-- /profiles -->', 1)[0]


@pytest.mark.parametrize('source', ['nbs/index.ipynb', 'README.md'])
def test_readme_profile_table_is_generated_from_the_protocol(source):
    text = markdown_of_index() if source.endswith('.ipynb') else README.read_text()
    assert profile_table(text) == profiles_markdown(), (
        f"{source}'s profile table is stale: paste gdml.protocol.profiles_markdown() into nbs/index.ipynb, then `make readme`")


@pytest.mark.parametrize('source', ['nbs/index.ipynb', 'README.md'])
def test_readme_quotes_every_headline_table_as_written(source):
    "Each `results/*/tables/headline_*.md` that `gdml tables` wrote is quoted whole, so no number in the README is stale."
    text = markdown_of_index() if source.endswith('.ipynb') else README.read_text()
    quoted = sorted(re.findall(r'<!-- table: (\S+) -->', text))
    written = sorted(str(p.relative_to(ROOT)) for p in ROOT.glob('results/*/tables/headline_*.md'))
    assert written, "no headline table under results/*/tables: run gdml tables --runs results/cpu"
    assert quoted == written, f"{source} quotes {quoted}, gdml tables wrote {written}"
    # quoting again (tools/quote_tables.py, as `make readme` does) changes nothing: every quote is the file as written
    assert quote_tables.quote(text) == text, f"{source} quotes a stale table: run `make readme` (it quotes the tables, then renders the README)"
