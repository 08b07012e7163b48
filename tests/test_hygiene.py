"""The repository speaks only of itself: no tracked file (records and notebooks included) names the machine it was
made on, its folders or the arrangements it was made under. Records keep versions, not paths; users point GDML_DATA at
their data. Each finding is reported as file:line.

The machine's paths are read from the machine the test runs on (the folder holding the repository, the home folder,
the folders beside the repository), so that no file, this one included, has to write them down; the words about the
arrangements are kept as SHA-256 digests for the same reason."""
import hashlib, re, subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

# digests (first 16 hex digits) of the lower-case words and word pairs that describe how this project is built rather
# than what it is; a line whose words or pairs of words hash to one of these is a finding
ARRANGEMENT_WORDS = {'306bc0cadb143e72', 'a0b57447f767e030', 'bbb7e4fdad15d6f0', '3f3af1ecebbd1410', '1225ae6c1ae69dcb',
                     '31d123108dba5fd3'}
WORD = re.compile(r'\w+')   # whole identifiers: start_new_session is a name, not a word
# a line of base64 (a notebook's image output): its letters are not words
BASE64 = re.compile(r'^\s*("image/[\w.+-]+": )?"[A-Za-z0-9+/=]{60,}(\\n)?",?\s*$')
# base64 inside a line (a data: URI, an array a page carries as bytes): random letters, which read as a short word now
# and then; a line's words are read without them (its paths are still looked for in the whole line)
BASE64_RUN = re.compile(r'[A-Za-z0-9+/=]{60,}')
# a third-party script that a page carries verbatim (BokehJS, inline in gdml.explore's pages and in the explorer
# notebook's output): from its licence banner to the end of its script, its words are the library's, not the project's
VENDORED_START = re.compile(r'Copyright \(c\) Anaconda, Inc\., and Bokeh Contributors')
VENDORED_END = re.compile(r'</script>|&lt;/script&gt;')


def _digest(text: str) -> str: return hashlib.sha256(text.encode()).hexdigest()[:16]


def machine_paths(root: Path = ROOT, home: Path | None = None) -> dict[str, re.Pattern]:
    """Patterns of this machine's absolute folders: the one holding the repository, the home folder, and the folders
    beside the repository named relatively (`../<sibling>/`). A folder at the top of the file system is too general."""
    home = Path.home() if home is None else home
    out = {}
    for name, folder in (('the folder holding the repository', root.parent), ('the home folder', home)):
        if len(folder.parts) > 1:   # not '/'
            out[f'absolute path under {name}'] = re.compile(r'(?<![\w.~$}])' + re.escape(str(folder).rstrip('/') + '/'))
    siblings = [p.name for p in root.parent.iterdir() if p.is_dir() and p != root] if root.parent.is_dir() else []
    if siblings:
        out['a folder beside the repository'] = re.compile(r'\.\./(' + '|'.join(map(re.escape, siblings)) + r')/')
    return out


PATTERNS = machine_paths()


def findings(path: str, text: str, patterns: dict = PATTERNS) -> list[tuple[str, int, str, str]]:
    "(path, line number, what, line) for every path of this machine and every word about its arrangements in `text`."
    found, vendored = [], False
    for i, line in enumerate(text.splitlines(), 1):
        if vendored or VENDORED_START.search(line):
            vendored = not VENDORED_END.search(line)
            continue
        if BASE64.match(line): continue
        for name, pat in patterns.items():
            if pat.search(line): found.append((path, i, name, line.strip()))
        words = [w.lower() for w in WORD.findall(BASE64_RUN.sub(' ', line))]
        if {_digest(w) for w in words} & ARRANGEMENT_WORDS or {_digest(f'{a} {b}') for a, b in zip(words, words[1:])} & ARRANGEMENT_WORDS:
            found.append((path, i, 'a word about how the project is built', line.strip()))
    return found


def test_a_vendored_script_is_the_library_s_words_until_it_ends():
    w = 'sess' + 'ion'
    page = f"<script>\n/*!\n * Copyright (c) Anaconda, Inc., and Bokeh Contributors\n */\nfunction pull_{w}(){{}} a.{w}=1\n</script>\n"
    assert not findings('x', page, {})
    assert findings('x', page + f'<p>our {w}</p>', {}) == [('x', 7, 'a word about how the project is built', f'<p>our {w}</p>')]
    escaped = page.replace('<', '&lt;').replace('>', '&gt;')   # inside a frame's srcdoc (a notebook output)
    assert not findings('x', escaped, {}) and findings('x', escaped + f'our {w}', {})


def test_base64_inside_a_line_is_not_read_as_words():
    w = 'sess' + 'ion'
    uri = 'data:image/webp;base64,' + 'QUJD' * 20 + f'+{w.upper()}/' + 'QUJD' * 20
    assert not findings('x', f'<img src="{uri}">', {}) and findings('x', f'<img src="{uri}"> {w}', {})


def tracked_files() -> list[str]:
    out = subprocess.run(['git', 'ls-files', '-z'], cwd=ROOT, capture_output=True, check=True).stdout
    return [p for p in out.decode().split('\0') if p]


def scan(paths) -> list[tuple[str, int, str, str]]:
    found = []
    for p in paths:
        f = ROOT/p
        if not f.is_file(): continue                      # deleted in the working tree, not yet committed
        data = f.read_bytes()
        if b'\0' in data[:8192]: continue                 # binary (images, archives)
        found += findings(p, data.decode('utf-8', errors='replace'))
    return found


@pytest.fixture(scope='module')
def everything():
    try: return scan(tracked_files())
    except (OSError, subprocess.CalledProcessError) as e: pytest.skip(f'not a git checkout: {e}')


def test_no_tracked_file_names_the_build_machine(everything):
    assert not everything, f"{len(everything)} line(s) name the machine or the arrangements it was built under:\n" + '\n'.join(
        f"{p}:{i}: {n}: {line[:160]}" for p, i, n, line in everything[:60])


def test_the_paths_come_from_the_machine(tmp_path):
    # a repository "repo" beside a folder "data" in a folder "ws", and a home folder "me", all under tmp_path
    repo, home = tmp_path/'ws'/'repo', tmp_path/'users'/'me'
    repo.mkdir(parents=True); (tmp_path/'ws'/'data').mkdir(); home.mkdir(parents=True)
    pats = machine_paths(repo, home)
    assert findings('x', f'  "python_executable": "{repo}/.venv/bin/python",', pats)
    assert findings('x', f'out_dir = "{home}/runs"', pats)
    assert findings('x', 'export GDML_DATA=$PWD/../data/cifar', pats)
    for line in ('root/train/<class>/*', 'export GDML_DATA=~/datasets', 'data/x/y', 'W=${TMPDIR:-/tmp}/gdml', '../docs/x'):
        assert not findings('x', line, pats), line
    assert machine_paths(Path('/repo'), Path('/')) == {} or 'a folder beside the repository' in machine_paths(Path('/repo'), Path('/'))


def test_the_words_are_caught_as_digests():
    # the digests are of lower-case words and word pairs: the same word in any case is caught, a longer one is not
    w = 'sess' + 'ion'
    assert findings('x', f'the GPU {w.upper()} plan', {}) and findings('x', f'one {w}', {})
    for line in ('start_new_session=True', 'an excellent result', 'tests/test_gpu_session.py', 'a silent run'):
        assert not findings('x', line, {}), line


def test_the_scan_reads_the_tracked_tree_records_included(everything):
    files = tracked_files()
    assert 'README.md' in files and any(p.startswith('results/') and p.endswith('result.json') for p in files)
    assert 'tests/test_hygiene.py' in files and len(files) > 100


def test_no_tracked_file_is_over_one_mib():
    # records, figures and notebooks are committed; data and checkpoints are not (.gitignore), and a generated file
    # that outgrows this (a figure's PDF, an explorer page) is made smaller or left to be generated
    files = subprocess.run(['git', 'ls-files', '-z'], cwd=ROOT, capture_output=True, text=True, check=True).stdout.split('\0')
    big = [f"{f}: {(ROOT/f).stat().st_size / 2**20:.2f} MiB" for f in files if f and (ROOT/f).is_file() and (ROOT/f).stat().st_size > 2**20]
    assert not big, big
