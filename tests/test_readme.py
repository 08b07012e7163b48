"""The protocol table of the docs (nbs/protocols.md) is the one `gdml.protocol` renders (one source of defaults), and
every results table the README and the docs pages quote is the file `gdml tables` wrote (`make readme` copies them in
with tools/quote_tables.py). README.md is rendered from nbs/index.ipynb (`make readme`; tests/test_docs.py checks the
two agree), so its quotes are checked in both: in the notebook, where it is edited, and in the README, which is what
readers see. The README is a front page: under 150 lines, its headline figure the verdicts."""
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


def test_the_profile_table_is_generated_from_the_protocol():
    assert profile_table((ROOT/'nbs'/'protocols.md').read_text()) == profiles_markdown(), (
        "nbs/protocols.md's profile table is stale: run `make readme` (it pastes gdml.protocol.profiles_markdown())")


@pytest.mark.parametrize('source', ['nbs/index.ipynb', 'README.md'])
def test_readme_quotes_the_overview_as_written(source):
    "The README quotes each study's overview table (`gdml tables`' overview.md) whole: no number in it is stale."
    text = markdown_of_index() if source.endswith('.ipynb') else README.read_text()
    quoted = sorted(re.findall(r'<!-- table: (\S+) -->', text))
    written = sorted(str(p.relative_to(ROOT)) for p in ROOT.glob('results/cpu/tables/overview.md'))
    assert written, "no overview table under results/cpu/tables: run gdml tables --runs results/cpu"
    assert quoted == written, f"{source} quotes {quoted}, gdml tables wrote {written}"
    # quoting again (tools/quote_tables.py, as `make readme` does) changes nothing: every quote is the file as written
    assert quote_tables.quote(text) == text, f"{source} quotes a stale table: run `make readme` (it quotes the tables, then renders the README)"


@pytest.mark.parametrize('page', sorted(p.name for p in (ROOT/'nbs').glob('*.md')))
def test_every_docs_page_quotes_tables_as_written(page):
    text = (ROOT/'nbs'/page).read_text()
    assert quote_tables.quote(text) == text, f"nbs/{page} quotes a stale table: run `make readme`"


def test_readme_is_a_front_page():
    text = README.read_text()
    assert len(text.splitlines()) < 150, f"README.md has {len(text.splitlines())} lines"
    assert '(results/cpu/figures/verdicts.png)' in text and (ROOT/'results'/'cpu'/'figures'/'verdicts.png').exists()
    assert '```bash\nmake demo' in text and 'make test' in text
