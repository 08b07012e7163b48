"""mkdocs hooks that turn the notebooks into docs pages the way nbdev's own docs read (mkdocs.yml: `hooks:`).

Nothing in nbs/ is rewritten and nothing is executed. Before mkdocs reads its docs, `on_config` copies nbs/ into a
temporary folder and builds the site from that copy, where each notebook is shown as a reader wants it:

- directive lines (`#| export`, `#| default_exp`, ...) are removed from every cell; `#| hide` cells, and cells left
  empty (a lone `#| default_exp`), are dropped;
- each `#| export` cell becomes the API entries of the public functions and classes it defines (signature, docstring,
  docments table: nbdev's `show_doc` convention), followed by the cell's source folded in a `<details>` block;
- stderr streams (kernel warnings) are dropped from the outputs, and ANSI colour codes are stripped from the rest.

The hooks also render the notebooks' LaTeX (`$...$`, `$$...$$`) to MathML at build time (latex2mathml: no script,
no web font, the pages read from disk), keep code spans in the table of contents (mkdocs-jupyter's TOC drops
them), remove the mermaid script the notebook template loads from a CDN, add the site's stylesheet, and put the
original notebooks, not the copies, beside the pages for download.
"""
from __future__ import annotations

import ast, copy, hashlib, html, importlib, inspect, json, logging, re, shutil, tempfile
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


def docs_notebook(nb: dict, module=None) -> dict:
    "The notebook `nb` as its docs page shows it (see the module's docstring); `module`: the one it exports to."
    nb = copy.deepcopy(nb)
    cells = []
    for c in nb['cells']:
        src = ''.join(c['source']) if isinstance(c['source'], list) else c['source']
        if c['cell_type'] != 'code':
            cells.append(dict(c, source=src)); continue
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


def page_html(content: str) -> str:
    "A rendered notebook's HTML: exported sources folded, no script from a CDN."
    from bs4 import BeautifulSoup
    soup = BeautifulSoup(content, 'html.parser')
    for s in soup.find_all('script'):
        if re.search(r'https?://', s.get('src') or '') or re.search(r'import\b[^;]*?["\']https?://', s.string or ''):
            s.decompose()
        elif s.get('type') == 'text/x-mathjax-config' or (s.has_attr('src') and not s['src']):
            s.decompose()
    for cell in soup.select('div.celltag_gdml-source'):
        details = soup.new_tag('details', attrs={'class': 'gdml-source'})
        summary = soup.new_tag('summary'); summary.string = 'Source'
        cell.wrap(details); details.insert(0, summary)
    return str(soup)


# ---------------------------------------------------------------- the hooks

def on_config(config, **kw):
    _patch_renderers()
    src = Path(config['docs_dir'])
    tmp = Path(tempfile.mkdtemp(prefix='gdml-docs-'))
    dst = tmp/'nbs'
    shutil.copytree(src, dst, ignore=shutil.ignore_patterns('.ipynb_checkpoints', '_proc', '__pycache__'))
    for nb_path in dst.rglob('*.ipynb'):
        nb = json.loads(nb_path.read_text(encoding='utf-8'))
        nb_path.write_text(json.dumps(docs_notebook(nb, _module_of(nb)), indent=1, ensure_ascii=False), encoding='utf-8')
    (dst/'assets').mkdir(exist_ok=True)
    shutil.copy(CSS, dst/'assets'/'gdml.css')
    config['extra_css'] = list(config['extra_css']) + ['assets/gdml.css']
    _state.update(src=src, tmp=tmp)
    config['docs_dir'] = str(dst)
    return config


def on_serve(server, config, builder, **kw):
    if 'src' in _state: server.watch(str(_state['src']))
    server.watch(str(HERE/'docs_hooks.py'))
    return server


def on_page_content(content, page, config, files, **kw):
    return page_html(content) if page.file.src_uri.endswith('.ipynb') else content


def on_post_build(config, **kw):
    src, site = _state.get('src'), Path(config['site_dir'])
    if src is not None:                        # the download beside each page is the notebook itself, not the copy
        for nb in src.rglob('*.ipynb'):
            if (t := site/nb.relative_to(src)).exists(): shutil.copyfile(nb, t)
    _cleanup()


def on_build_error(error, **kw):
    _cleanup()


def _cleanup():
    if (tmp := _state.pop('tmp', None)) is not None: shutil.rmtree(tmp, ignore_errors=True)
