"""mkdocs hooks that turn the notebooks into docs pages the way nbdev's own docs read (mkdocs.yml: `hooks:`).

Nothing in nbs/ or results/ is rewritten and nothing is executed. Before mkdocs reads its docs, `on_config` copies
nbs/, and the executed notebooks, figures and explorer pages of each study in `STUDIES` (results/cpu), into a
temporary folder and builds the site from that copy, where each notebook is shown as a reader wants it:

- directive lines (`#| export`, `#| default_exp`, ...) are removed from every cell; `#| hide` cells, and cells left
  empty (a lone `#| default_exp`), are dropped;
- each `#| export` cell becomes the API entries of the public functions and classes it defines (signature, docstring,
  docments table: nbdev's `show_doc` convention), followed by the cell's source folded in a `<details>` block whose
  summary names everything the cell defines;
- stderr streams (kernel warnings) are dropped from the outputs, and ANSI colour codes are stripped from the rest;
- links written for the repository (README.md is rendered from index.ipynb, so `nbs/04_distill.ipynb`,
  `results/cpu/figures/figure_mnist.png`) point at the site's pages and copies, or at the repository on GitHub for a
  file the site does not hold; a link to no file of the repository fails the strict build.

The results page (nbs/results.md) gets its tables, figures and links from the study folder when the site is built,
and the study's executed notebooks join the nav's Results section. The hooks also render the notebooks' LaTeX
(`$...$`, `$$...$$`) to MathML at build time (latex2mathml: no script, no web font, the pages read from disk), keep
code spans in the table of contents (mkdocs-jupyter's TOC drops them), give repeated heading ids the TOC's suffixes
(`evaluate_1`), remove the mermaid script the notebook template loads from a CDN, serve the stylesheets that
mkdocs-jupyter inlines into every page, and the notebooks' output images, as files, add the site's stylesheet, and put
the original notebooks, not the copies, beside the pages for download.
"""
from __future__ import annotations

import ast, copy, hashlib, html, importlib, inspect, json, logging, posixpath, re, shutil, tempfile, urllib.parse
from pathlib import Path

log = logging.getLogger('mkdocs.hooks.gdml')

HERE = Path(__file__).resolve().parent
CSS = HERE/'docs.css'
# the transformed notebooks carry this, so mkdocs-jupyter's cache (keyed by notebook bytes) follows the hooks' code
VERSION = hashlib.sha256(Path(__file__).read_bytes() + CSS.read_bytes()).hexdigest()[:12]

_DIRECTIVE = re.compile(r'^\s*#\|\s*([\w-]+)(.*)$')
_ANSI = re.compile(r'\x1b\[[0-9;]*[A-Za-z]')
_state: dict = {}


# ---------------------------------------------------------------- the notebook transform (a pure function)

def directives(src: str) -> dict:
    "The nbdev directives of a cell's source: {name: argument string}."
    return {m.group(1): m.group(2).strip() for l in src.splitlines() if (m := _DIRECTIVE.match(l))}


def strip_directives(src: str) -> str:
    "`src` without its `#| ...` lines."
    return '\n'.join(l for l in src.splitlines() if not _DIRECTIVE.match(l)).strip('\n')


def _public_defs(src: str) -> list[ast.AST]:
    try: tree = ast.parse(src)
    except SyntaxError: return []
    return [n for n in tree.body if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef))
            and not n.name.startswith('_') and not any(_is_patch(d) for d in n.decorator_list)]


def _is_patch(d) -> bool:
    d = d.func if isinstance(d, ast.Call) else d
    return (d.id if isinstance(d, ast.Name) else getattr(d, 'attr', '')) in ('patch', 'patch_to')


def _md_cell(src: str, **meta) -> dict:
    return dict(cell_type='markdown', metadata=meta, source=src)


def _esc_cell(s) -> str:
    return str(s).replace('|', r'\|').replace('\n', '<br>')


def _fmt_anno(a) -> str:
    if a is inspect.Parameter.empty: return ''
    return a if isinstance(a, str) else inspect.formatannotation(a)


def _sig_lines(prefix: str, name: str, params: list[str], ret: str, width: int = 64) -> str:
    "`def name(a, b=1) -> r`; where that is wider than `width`, the parameters packed on indented lines (nbdev's style)."
    one = f"{prefix} {name}({', '.join(params)}){ret}"
    if len(one) <= width or not params: return one
    lines, cur = [], ''
    for p in params:
        if cur and len(cur) + len(p) + 6 > width: lines.append(cur + ','); cur = ''
        cur = f'{cur}, {p}' if cur else p
    lines.append(cur)
    return f"{prefix} {name}(\n" + ''.join(f"    {l}\n" for l in lines) + f"){ret}"


def _entry_from_object(obj, name: str, kind: str) -> str:
    from fastcore.docments import docments
    target = obj.__init__ if kind == 'class' and not hasattr(obj, '__dataclass_fields__') else obj
    try: sig = inspect.signature(obj)
    except (TypeError, ValueError): sig = None
    params, ret = [], ''
    if sig is not None:
        for p in sig.parameters.values():
            s = ('*' if p.kind is p.VAR_POSITIONAL else '**' if p.kind is p.VAR_KEYWORD else '') + p.name
            if (a := _fmt_anno(p.annotation)): s += f': {a}'
            if p.default is not p.empty: s += f"{' = ' if a else '='}{p.default!r}"
            params.append(s)
        if kind != 'class' and (a := _fmt_anno(sig.return_annotation)): ret = f' -> {a}'
    prefix = 'class' if kind == 'class' else ('async def' if inspect.iscoroutinefunction(obj) else 'def')
    doc = inspect.getdoc(obj) or ''
    if kind == 'class' and not doc: doc = inspect.getdoc(target) or ''
    rows = []
    try: dm = docments(obj, full=True)
    except Exception: dm = {}
    if sig is not None and any(v.get('docment') for k, v in dm.items()):
        for k, p in sig.parameters.items():
            if k == 'self': continue
            d = dm.get(k, {})
            rows.append((k, _fmt_anno(p.annotation), '' if p.default is p.empty else repr(p.default), d.get('docment') or ''))
        if (r := dm.get('return')) and r.get('docment'): rows.append(('**Returns**', _fmt_anno(r.get('anno', inspect.Parameter.empty)), '', r['docment']))
    return _entry_md(name, _sig_lines(prefix, name, params, ret), doc, rows)


def _split_args(s: str) -> list[str]:
    "`ast.unparse(args)` split at its top-level commas."
    out, depth, cur = [], 0, ''
    for ch in s:
        depth += ch in '([{'
        depth -= ch in ')]}'
        if ch == ',' and depth == 0: out.append(cur.strip()); cur = ''
        else: cur += ch
    return [a for a in out + [cur.strip()] if a]


def _entry_from_ast(node, name: str) -> str:
    "The entry from the source alone (the module could not be imported, or does not hold `name`)."
    if isinstance(node, ast.ClassDef):
        init = next((n for n in node.body if isinstance(n, ast.FunctionDef) and n.name == '__init__'), None)
        fields = [ast.unparse(n) for n in node.body if isinstance(n, ast.AnnAssign)]
        params = [a for a in _split_args(ast.unparse(init.args)) if a != 'self'] if init else fields
        sig = _sig_lines('class', name, params, '')
    else:
        ret = f' -> {ast.unparse(node.returns)}' if node.returns else ''
        prefix = 'async def' if isinstance(node, ast.AsyncFunctionDef) else 'def'
        sig = _sig_lines(prefix, name, _split_args(ast.unparse(node.args)), ret)
    return _entry_md(name, sig, ast.get_docstring(node) or '', [])


def _entry_md(name: str, sig: str, doc: str, rows: list) -> str:
    md = [f'### {name}', '', '```python', sig, '```', '']
    if doc: md += [doc, '']
    if rows:
        md += ['|  | **Type** | **Default** | **Details** |', '| -- | -------- | ----------- | ----------- |']
        md += [f'| {_esc_cell(k)} | {_esc_cell(t)} | {_esc_cell(d)} | {_esc_cell(x)} |' for k, t, d, x in rows]
    return '\n'.join(md).rstrip() + '\n'


def api_entries(src: str, module) -> str:
    "Markdown for the public functions and classes defined by an exported cell's source."
    out = []
    for node in _public_defs(src):
        obj = getattr(module, node.name, None) if module is not None else None
        kind = 'class' if isinstance(node, ast.ClassDef) else 'def'
        try: out.append(_entry_from_object(obj, node.name, kind) if callable(obj) else _entry_from_ast(node, node.name))
        except Exception as e:
            log.info('gdml docs: %s from its source (%s)', node.name, e)
            out.append(_entry_from_ast(node, node.name))
    return '\n'.join(out)


def _clean_outputs(outputs: list) -> list:
    kept = []
    for o in outputs:
        if o.get('output_type') == 'stream' and o.get('name') == 'stderr': continue
        o = copy.deepcopy(o)
        if o.get('output_type') == 'stream':
            o['text'] = _ANSI.sub('', ''.join(o['text']) if isinstance(o['text'], list) else o['text'])
        elif o.get('output_type') == 'error':
            o['traceback'] = [_ANSI.sub('', t) for t in o.get('traceback', [])]
        kept.append(o)
    return kept


def docs_notebook(nb: dict, module=None, link=None) -> dict:
    """The notebook `nb` as its docs page shows it (see the module's docstring); `module`: the one it exports to;
    `link`: maps each link target of its markdown to the site's (`rewrite_links`)."""
    nb = copy.deepcopy(nb)
    cells = []
    for c in nb['cells']:
        src = ''.join(c['source']) if isinstance(c['source'], list) else c['source']
        if c['cell_type'] != 'code':
            cells.append(dict(c, source=rewrite_links(src, link) if link and c['cell_type'] == 'markdown' else src))
            continue
        d = directives(src)
        if 'hide' in d or d.get('include:') == 'false': continue
        body = strip_directives(src)
        outputs = [] if d.get('output:') == 'false' else _clean_outputs(c.get('outputs', []))
        if 'export' in d or 'exports' in d or 'exporti' in d:
            if 'exporti' not in d and (entries := api_entries(body, module)):
                cells.append(_md_cell(entries, gdml_docs='api'))
            tags = list(c.get('metadata', {}).get('tags', [])) + ['gdml-source']
            cells.append(dict(c, source=body, outputs=outputs, metadata=dict(c.get('metadata', {}), tags=tags)))
            continue
        if not body.strip() and not outputs: continue
        if d.get('echo:') == 'false': body = ''
        cells.append(dict(c, source=body, outputs=outputs))
    nb['cells'] = cells
    nb.setdefault('metadata', {})['gdml_docs'] = VERSION
    return nb


def _module_of(nb: dict):
    for c in nb['cells']:
        if c['cell_type'] == 'code' and (m := directives(''.join(c['source'])).get('default_exp')):
            try: return importlib.import_module(f'gdml.{m.split()[0]}')
            except Exception as e:
                log.info('gdml docs: gdml.%s not importable (%s); API entries from the source', m, e)
                return None
    return None


# ---------------------------------------------------------------- links written for the repository

# README.md (rendered from nbs/index.ipynb) is read on GitHub, so its links are repository paths (`nbs/04_distill.ipynb`,
# `results/cpu/figures/figure_mnist.png`); the site holds nbs/ at its root and copies of the results it shows
_CODE = re.compile(r'(?ms)^(```|~~~).*?^\1|`[^`\n]*`')
# a markdown link or image `](t`, an HTML `href="t"` or `src="t"`, a reference definition `[name]: t`
_TARGET = re.compile(r'(\]\()([^)\s]+)|(\b(?:href|src)=")([^"]+)(")|(^\[[^\]\n]+\]:[ \t]+)(\S+)', re.M)


def rewrite_links(md: str, link) -> str:
    "`md` with each link and image target `t` replaced by `link(t)`; code spans and fenced code are left as written."
    def one(m):
        if m.group(2): return m.group(1) + link(m.group(2))
        if m.group(4): return m.group(3) + link(m.group(4)) + m.group(5)
        return m.group(6) + link(m.group(7))
    out, last = [], 0
    for m in _CODE.finditer(md):
        out += [_TARGET.sub(one, md[last:m.start()]), m.group(0)]
        last = m.end()
    return ''.join(out + [_TARGET.sub(one, md[last:])])


def site_link(target: str, repo_dir: str, site_dir: str, published: set, repo: Path, repo_url: str,
              branch: str = 'main', page_suffix: str | None = '.html') -> str:
    """Where a link written in a file of the repository folder `repo_dir` points on the site, from the page at
    `site_dir`: a file of nbs/ is at the site's root, a repository file in `published` is copied to the same path; any
    other file of the repository is linked on `repo_url` (GitHub). `page_suffix`: what a notebook's or markdown
    page's link ends with ('.html' in a rendered notebook; None in a markdown page, whose links mkdocs resolves).
    URLs, in-page anchors and links outside the repository are returned as they are."""
    if re.match(r'([a-z][a-z0-9+.-]*:|#|/)', target, re.I): return target
    path, _, frag = target.partition('#')
    to = posixpath.normpath(posixpath.join(repo_dir, urllib.parse.unquote(path)))
    if to == '..' or to.startswith('../'): return target
    if to.startswith('nbs/') and (repo/to).is_file(): site = to.removeprefix('nbs/')
    elif to in published: site = to
    elif (repo/to).exists():
        return f"{repo_url}/{'tree' if (repo/to).is_dir() else 'blob'}/{branch}/{to}" + (f'#{frag}' if frag else '')
    else:
        log.warning('gdml docs: the link %r (written in %s/) names no file of the repository', target, repo_dir or '.')
        return target
    if page_suffix and site.endswith(('.ipynb', '.md')): site = site.rsplit('.', 1)[0] + page_suffix
    return posixpath.relpath(site, site_dir or '.') + (f'#{frag}' if frag else '')


def repo_web(repo: Path) -> dict:
    "The repository's web address and branch (settings.ini's git_url and branch): `site_link`'s repo_url and branch."
    import configparser
    cfg = configparser.ConfigParser(); cfg.read(repo/'settings.ini')
    return dict(repo_url=cfg['DEFAULT']['git_url'].rstrip('/'), branch=cfg['DEFAULT'].get('branch', 'main'))


# ---------------------------------------------------------------- the results page

# nbs/results.md holds the page's prose; between these markers the build puts what results/<study> holds now
_RESULTS = re.compile(r'(?s)<!-- results: (\S+) -->\n.*?<!-- /results -->')
# what the page shows once it exists (the study's figures/ and explore/ folders); a missing one leaves a marked place
VERDICTS = 'figures/verdicts.png'
EXPLORER = 'explore/{dataset}.html'


def _names():
    "gdml.reporting's names of the datasets and numbers of the paper's tables and figures (as the tables use them)."
    from gdml import reporting
    return reporting.DATASET_NAMES, reporting.TABLE_NUMBERS, reporting.FIGURE_NUMBERS


def dataset_name(ds: str) -> str:
    return _names()[0].get(ds, ds)


def study_datasets(study: Path) -> list[str]:
    "The datasets with a headline table in `study`/tables, in the order of the paper's tables (Table 1, 2, 3)."
    numbers = _names()[1]
    return sorted((p.stem.removeprefix('headline_') for p in (study/'tables').glob('headline_*.md')),
                  key=lambda ds: (numbers.get(ds, 99), ds))


def readings(study: Path) -> list[Path]:
    """The study's executed notebooks (reproduction_*, claims_*): one dataset after another in the tables' order, its
    reproduction first."""
    order = {ds: i for i, ds in enumerate(study_datasets(study))}
    def key(p):
        kind, _, ds = p.stem.partition('_')
        return order.get(ds, 99), kind != 'reproduction', p.stem
    return sorted(study.glob('*.ipynb'), key=key)


def reading_title(nb: Path) -> str:
    "`claims_fashion_mnist.ipynb` -> 'Claims on Fashion-MNIST (executed)'."
    kind, _, ds = nb.stem.partition('_')
    return f"{kind.capitalize()} on {dataset_name(ds)} (executed)" if ds else nb.stem


def retitle_reading(nb: dict, nb_path: Path, repo: Path) -> dict:
    """An executed notebook of a study titled by what it is ('Claims on MNIST (executed)'), not by its template's title,
    which the copies for each dataset share; a line under the title names the experiment notebook it ran."""
    nb = copy.deepcopy(nb)
    first = next((c for c in nb['cells'] if c['cell_type'] == 'markdown'), None)
    src = ''.join(first['source']) if first else ''
    if not src.startswith('# '): return nb
    kind, _, ds = nb_path.stem.partition('_')
    template = repo/'nbs'/'experiments'/f'{kind}.ipynb'
    ran = (f'[{kind}.ipynb]({posixpath.relpath(template.relative_to(repo).as_posix(), nb_path.parent.relative_to(repo).as_posix())})'
           if template.is_file() else f'`{kind}`')
    head, _, rest = src.partition('\n')
    first['source'] = (f'# {reading_title(nb_path)}\n\n*The experiment notebook {ran}, executed on {dataset_name(ds)} '
                       f'for this study (the cell `# Parameters` holds its values); its own title: {head[2:].strip()}.*\n' + rest)
    return nb


def _fold(title: str, md: str) -> str:
    "A collapsed block (pymdownx.details) holding `md`."
    return f'??? info "{title}"\n\n' + ''.join(f'    {l}\n' if l.strip() else '\n' for l in md.strip().splitlines()) + '\n'


def _placeholder(what: str, how: str) -> str:
    return f'!!! note "{what}: not made yet"\n\n    {how}\n\n'


def _verdicts_md(study: Path, rel: str, folder: str) -> str:
    if (study/VERDICTS).is_file():
        overview = study/'tables'/'overview.md'
        return (f'![The verdicts: G-DML minus each arm, Welch 95% intervals]({rel}/{VERDICTS})\n'
                + (f"\n{overview.read_text(encoding='utf-8').strip()}\n" if overview.is_file() else ''))
    return _placeholder('The verdicts figure', f'`gdml figures` draws `{folder}/{VERDICTS}` (G-DML minus each arm, Recall@1 '
                        'and MAP@R, Welch 95% intervals); this page shows it once it is in the study folder.')


def _dataset_md(study: Path, ds: str, rel: str, folder: str) -> str:
    "One dataset's section of the results page (`results_section`)."
    names, tables, figures = _names()
    name, number, fig = names.get(ds, ds), tables.get(ds), figures.get(ds)
    table = lambda kind: study/'tables'/f'{kind}_{ds}.md'
    headline = table('headline').read_text(encoding='utf-8').strip()
    heading = ' and '.join(x for x in (number and f'Table {number}', fig and f'Figure {fig}') if x)
    out = [f'## {heading + ": " if heading else ""}{name}\n\n{headline}\n']
    if (study/(figure := f'figures/figure_{ds}.png')).is_file():
        caption = f"{f'Figure {fig}' if fig else 'The figure'} at this scale: the 2-D test embeddings of every arm on {name}, seed 0"
        out.append(f'![{caption}]({rel}/{figure})\n\n*{caption}.*\n')
    for extra in sorted(study.glob(f'figures/figure_{ds}_*.png')):   # arms on other classes or students (gdml.figures.figure_parts)
        part = extra.stem.removeprefix(f'figure_{ds}_').replace('_', ' ')
        caption = f"The arms with {part} on {name}: their 2-D test embeddings, seed 0"
        out.append(f'![{caption}]({rel}/figures/{extra.name})\n\n*{caption}.*\n')
    if (study/(teacher := f'figures/teacher_student_{ds}.png')).is_file():   # tools/teacher_student_figure.py
        caption = f"The flattest and the roundest GEMINI teacher on {name}: its Z-hat of the train set beside its student's test embedding"
        out.append(f'![{caption}]({rel}/{teacher})\n\n*{caption}.*\n')
    explorer = EXPLORER.format(dataset=ds)
    out.append(f'[The {name} embedding explorer]({rel}/{explorer}): every arm, seed 0 (`gdml explore`).\n' if (study/explorer).is_file()
               else _placeholder(f'The {name} embedding explorer', f'`gdml explore` writes `{folder}/{explorer}` (seed 0, every '
                                 'arm); this page links it once it is in the study folder.'))
    for kind, title in (('table', f'Every metric on {name}'), ('paper_vs_ours', f'Ours beside the paper on {name}, metric by metric'),
                        ('verdicts', f'Every verdict on {name}: G-DML minus each arm'),
                        ('claims', f"The paper's claims measured on {name}"),
                        ('diagnostics', f"Diagnostics on {name}: the teacher's layout and the student's fit")):
        if table(kind).is_file(): out.append(_fold(title, table(kind).read_text(encoding='utf-8')))
    if (own := [p for p in readings(study) if p.stem.partition('_')[2] == ds]):
        out.append('The executed notebooks: ' + ', '.join(
            f'[{reading_title(p).removesuffix(" (executed)")}]({rel}/{p.name})' for p in own) + '.\n')
    return '\n'.join(out)


def results_section(study: Path, rel: str, folder: str) -> str:
    """Markdown for what the study folder `study` holds, its files linked as `rel`/... (their path from the page's
    folder in the repository): the verdicts figure, then per dataset its headline table, its figure of the 2-D
    embeddings, its explorer page, every metric, the comparison with the paper, the claims and the executed readings.
    A file not made yet leaves a marked place, not a broken link; `folder`: the study's path in the repository."""
    return '\n'.join(['## The verdicts\n', _verdicts_md(study, rel, folder)] +
                     [_dataset_md(study, ds, rel, folder) for ds in study_datasets(study)])


def results_page(md: str, repo: Path, page_dir: str) -> str:
    "`md` with each `<!-- results: FOLDER -->` ... `<!-- /results -->` block filled from the repository's FOLDER."
    def fill(m):
        rel = posixpath.relpath(m.group(1), page_dir)
        return f'<!-- results: {m.group(1)} -->\n{results_section(repo/m.group(1), rel, m.group(1))}\n<!-- /results -->'
    return _RESULTS.sub(fill, md)


# ---------------------------------------------------------------- math, TOC and page HTML

def latex_to_mathml(tex: str, display: bool) -> str:
    from latex2mathml.converter import convert
    tex = html.unescape(tex).strip()
    try: return convert(tex, display='block' if display else 'inline')
    except Exception as e:
        log.warning('gdml docs: LaTeX %r does not convert to MathML (%s)', tex, e)
        return html.escape(f"$${tex}$$" if display else f"${tex}$")


def _patch_renderers():
    from nbconvert.filters.markdown_mistune import IPythonRenderer
    IPythonRenderer.inline_math = lambda self, body: latex_to_mathml(body, False)
    IPythonRenderer.block_math = lambda self, body: latex_to_mathml(body, True)
    IPythonRenderer.latex_environment = lambda self, name, body: latex_to_mathml(
        f'\\begin{{{name}}}{body}\\end{{{name}}}', True)
    import mkdocs_jupyter.plugin as plugin
    plugin._get_nb_toc_tokens = nb_toc_tokens


def nb_toc_tokens(fpath, toc_depth):
    """The TOC of a notebook from its markdown cells, code spans kept (mkdocs-jupyter's own converts to markdown
    first, which drops them), with the ids the page's headings get."""
    import markdown
    from markdown.extensions.toc import TocExtension
    from mkdocs_jupyter.utils import slugify
    from nbconvert.filters.strings import _convert_header_id
    cells = json.loads(Path(fpath).read_text(encoding='utf-8'))['cells']
    src = '\n\n'.join(''.join(c['source']) for c in cells if c['cell_type'] == 'markdown')
    src = re.sub(r'(?m)^(#{1,6} .*)$', lambda m: re.sub(r'\$([^$]+)\$', r'`\1`', m.group(1)), src)
    src = re.sub(r'(?ms)^```.*?^```', '', src)                   # fenced code holds no headings
    md = markdown.Markdown(extensions=[TocExtension(toc_depth=toc_depth, slugify=lambda v, sep: _convert_header_id(slugify(v)))])
    md.convert(src)
    tokens = md.toc_tokens
    def fix(ts):
        for t in ts:
            t['name'] = html.unescape(re.sub(r'<[^>]+>', '', t.get('html') or t['name']))
            fix(t['children'])
    fix(tokens)
    title = next((t['name'] for t in tokens if t['level'] == 1), None)
    return tokens, title


def source_names(code: str) -> tuple[str, list[str]]:
    """What a folded cell's source defines, for its fold's summary: ('Source of', [its functions, classes and constants,
    in order]), or ('Source: imports', []) for a cell of imports alone, as its entries above may not name them all."""
    try: body = ast.parse(code).body
    except SyntaxError: return 'Source', []
    names = []
    for n in body:
        if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)): names.append(n.name)
        elif isinstance(n, ast.Assign): names += [t.id for t in n.targets if isinstance(t, ast.Name)]
        elif isinstance(n, ast.AnnAssign) and isinstance(n.target, ast.Name): names.append(n.target.id)
    if names: return 'Source of', names
    return ('Source: imports' if body and all(isinstance(n, (ast.Import, ast.ImportFrom)) for n in body) else 'Source'), []


def _fold_summary(soup, cell):
    pre = cell.select_one('.jp-InputArea pre')
    label, names = source_names(pre.get_text() if pre else '')
    summary = soup.new_tag('summary'); summary.append(label + (' ' if names else ''))
    for i, n in enumerate(names):
        if i: summary.append(', ')
        code = soup.new_tag('code'); code.string = n; summary.append(code)
    return summary


def unique_heading_ids(soup):
    """Renumber repeated heading ids as the TOC does (python-markdown's `unique`: evaluate, evaluate_1, ...), so a
    section and an API entry of one name each have their own anchor and the TOC's links reach both."""
    from markdown.extensions.toc import unique
    seen = set()
    for h in soup.find_all(re.compile(r'^h[1-6]$'), id=True):
        old = h['id']
        if old in seen:
            h['id'] = unique(old, seen)
            for a in h.find_all('a', class_='anchor-link', href=f'#{old}'): a['href'] = f"#{h['id']}"
        else: seen.add(old)


# an output image wider than the content column links to itself at full size
WIDE_PX = 900
IMAGES = 'assets/images'


def _image_width(img, data: bytes) -> int:
    if (w := str(img.get('width', ''))).isdigit(): return int(w)
    return int.from_bytes(data[16:20], 'big') if data[:8] == b'\x89PNG\r\n\x1a\n' else 0


def move_images(soup, assets: dict, to_root: str):
    """Output images as files, not base64 in the page: each into `assets` ({site path: bytes}, named by its content),
    linked from the page at `to_root` (its path to the site's root); a wide one also links to itself at full size."""
    import base64
    for img in soup.select('.jp-OutputArea-output img[src^="data:image/"]'):
        m = re.match(r'data:image/(png|jpeg|gif);base64,(.*)$', img['src'], re.S)
        if not m: continue
        data = base64.b64decode(m.group(2))
        name = f"{IMAGES}/{hashlib.sha256(data).hexdigest()[:16]}.{'jpg' if m.group(1) == 'jpeg' else m.group(1)}"
        assets[name] = data
        img['src'] = to_root + name
        if (width := _image_width(img, data)) > WIDE_PX and img.parent.name != 'a':
            img.wrap(soup.new_tag('a', attrs={'href': to_root + name, 'class': 'gdml-zoom', 'title': 'the figure at full size'}))
            note = soup.new_tag('div', attrs={'class': 'gdml-zoom-note'})
            a = soup.new_tag('a', attrs={'href': to_root + name}); a.string = f'The figure at full size ({width} px wide)'
            note.append(a); img.parent.insert_after(note)


_NUMBER = re.compile(r'^\W{0,2}[-+−–]?\d[\d.,]*%?\W{0,2}( ± [\d.,]+%?)?\W{0,2}$')


def keep_numbers_whole(soup):
    "Mark the table cells that hold one number (`93.30 ± 3.70`, `**96.96 ± 0.68**`) so that they do not wrap."
    for td in soup.find_all('td'):
        if _NUMBER.match(td.get_text().strip()): td['class'] = td.get('class', []) + ['gdml-number']


def page_html(content: str, assets: dict | None = None, to_root: str = '') -> str:
    """A rendered notebook's HTML: exported sources folded under a summary naming what they define, heading ids
    unique, no script from a CDN; with `assets`, output images moved into it (`move_images`)."""
    from bs4 import BeautifulSoup
    soup = BeautifulSoup(content, 'html.parser')
    for s in soup.find_all('script'):
        if re.search(r'https?://', s.get('src') or '') or re.search(r'import\b[^;]*?["\']https?://', s.string or ''):
            s.decompose()
        elif s.get('type') == 'text/x-mathjax-config' or (s.has_attr('src') and not s['src']):
            s.decompose()
    for cell in soup.select('div.celltag_gdml-source'):
        details = soup.new_tag('details', attrs={'class': 'gdml-source'})
        cell.wrap(details); details.insert(0, _fold_summary(soup, cell))
    unique_heading_ids(soup)
    keep_numbers_whole(soup)
    if assets is not None: move_images(soup, assets, to_root)
    return str(soup)


# mkdocs-jupyter puts the notebook theme's stylesheets (575 KB) into every page: the site serves each once, as a file
STYLES = 'assets/notebook'
_STYLE = re.compile(r'<style\b[^>]*>(.*?)</style>', re.S)


def shared_styles(page: str, assets: dict, to_root: str, min_chars: int = 2000) -> str:
    "`page` with each `<style>` of at least `min_chars` replaced by a link to its file, put in `assets` by content."
    def link(m):
        css = m.group(1)
        if len(css) < min_chars: return m.group(0)
        name = f"{STYLES}/{hashlib.sha256(css.encode()).hexdigest()[:16]}.css"
        assets[name] = css.encode()
        return f'<link rel="stylesheet" href="{to_root}{name}">'
    return _STYLE.sub(link, page)


# ---------------------------------------------------------------- the hooks

# the result studies whose executed notebooks, figures and explorer pages the site copies (nav: Results)
STUDIES = ('results/cpu',)


def study_files(study: Path) -> list[Path]:
    "What the site copies of a study folder: its executed notebooks, its figures and its explorer pages."
    return [p for pat in ('*.ipynb', 'figures/*.png', 'explore/*.html') for p in sorted(study.glob(pat))]


def _results_nav(nav: list, studies: list[Path], repo: Path) -> list:
    "The nav with each study's executed notebooks after the entries of its `Results` section."
    nav = copy.deepcopy(nav)
    for item in nav:
        if isinstance(item, dict) and isinstance(item.get('Results'), list):
            item['Results'] += [{reading_title(nb): nb.relative_to(repo).as_posix()} for st in studies for nb in readings(st)]
    return nav


def on_config(config, **kw):
    _patch_renderers()
    src, repo = Path(config['docs_dir']).resolve(), HERE.parent
    tmp = Path(tempfile.mkdtemp(prefix='gdml-docs-'))
    dst = tmp/'nbs'
    shutil.copytree(src, dst, ignore=shutil.ignore_patterns('.ipynb_checkpoints', '_proc', '__pycache__'))
    studies = [repo/st for st in STUDIES if (repo/st).is_dir()]
    # {path in the site: the repository's file} of every notebook, and the repository paths the site copies as they are
    originals = {nb.relative_to(src).as_posix(): nb for nb in src.rglob('*.ipynb') if '.ipynb_checkpoints' not in nb.parts}
    published = set()
    for f in (f for st in studies for f in study_files(st)):
        rel = f.relative_to(repo).as_posix()
        (dst/rel).parent.mkdir(parents=True, exist_ok=True); shutil.copyfile(f, dst/rel)
        published.add(rel)
        if f.suffix == '.ipynb': originals[rel] = f
    web = repo_web(repo)
    for rel in originals:
        site_dir = posixpath.dirname(rel)
        # README.md renders index.ipynb at the repository's root: its links are written from there
        repo_dir = '' if rel == 'index.ipynb' else posixpath.dirname(originals[rel].relative_to(repo).as_posix())
        link = lambda t, rd=repo_dir, sd=site_dir: site_link(t, rd, sd, published, repo, **web)
        nb = json.loads((dst/rel).read_text(encoding='utf-8'))
        if rel in published: nb = retitle_reading(nb, originals[rel], repo)
        (dst/rel).write_text(json.dumps(docs_notebook(nb, _module_of(nb), link), indent=1, ensure_ascii=False), encoding='utf-8')
    (dst/'assets').mkdir(exist_ok=True)
    shutil.copy(CSS, dst/'assets'/'gdml.css')
    config['extra_css'] = list(config['extra_css']) + ['assets/gdml.css']
    config['nav'] = _results_nav(config['nav'], studies, repo)
    _state.update(src=src, tmp=tmp, repo=repo, published=published, web=web, originals=originals, assets={})
    config['docs_dir'] = str(dst)
    return config


def on_serve(server, config, builder, **kw):
    if 'src' in _state: server.watch(str(_state['src']))
    server.watch(str(HERE/'docs_hooks.py'))
    return server


def _to_root(page) -> str:
    return '../' * page.url.count('/')


def on_page_markdown(markdown, page, config, files, **kw):
    "A markdown page of nbs/: its results blocks filled, its repository links pointed at the site."
    if 'repo' not in _state or not page.file.src_uri.endswith('.md'): return markdown
    site_dir = posixpath.dirname(page.file.src_uri)
    repo_dir = posixpath.join('nbs', site_dir).rstrip('/')
    markdown = results_page(markdown, _state['repo'], repo_dir)
    link = lambda t: site_link(t, repo_dir, site_dir, _state['published'], _state['repo'], page_suffix=None, **_state['web'])
    return rewrite_links(markdown, link)


def on_page_content(content, page, config, files, **kw):
    if page.file.src_uri.endswith('.ipynb'): return page_html(content, _state.setdefault('assets', {}), _to_root(page))
    from bs4 import BeautifulSoup
    soup = BeautifulSoup(content, 'html.parser')
    keep_numbers_whole(soup)
    return str(soup)


def on_post_page(output, page, config, **kw):
    return shared_styles(output, _state.setdefault('assets', {}), _to_root(page))


def on_post_build(config, **kw):
    site = Path(config['site_dir'])
    for rel, data in _state.get('assets', {}).items():
        (site/rel).parent.mkdir(parents=True, exist_ok=True); (site/rel).write_bytes(data)
    # the download beside each page is the notebook itself, not the build's copy
    for rel, nb in _state.get('originals', {}).items():
        if (t := site/rel).exists(): shutil.copyfile(nb, t)
    _cleanup()


def on_build_error(error, **kw):
    _cleanup()


def _cleanup():
    if (tmp := _state.pop('tmp', None)) is not None: shutil.rmtree(tmp, ignore_errors=True)
    for k in ('assets', 'originals'): _state.pop(k, None)
