"""The README's protocol table is the one `gdml.protocol` renders (one source of defaults)."""
from pathlib import Path

from gdml.protocol import profiles_markdown

README = Path(__file__).resolve().parents[1]/'README.md'


def test_readme_profile_table_is_generated_from_the_protocol():
    text = README.read_text()
    table = text.split('<!-- profiles -->\n', 1)[1].split('<!-- /profiles -->', 1)[0]
    assert table == profiles_markdown(), "README's profile table is stale: paste gdml.protocol.profiles_markdown() there"
