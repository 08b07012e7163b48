"""tools/scrub_records.py: committed records lose the machine's paths and keep every number; results/ is scrubbed."""
import json, sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT/'tools'))
import scrub_records  # noqa: E402

RUN = '/machine/out/digits/gdml/seed0-0123456789'


def write_run(root: Path) -> Path:
    d = root/'digits'/'gdml'/'seed0-0123456789'; d.mkdir(parents=True)
    rec = dict(metrics=dict(recall_at_1=95.26000000000001, map_at_r=90.58), embeddings='embeddings.npz',
               versions=dict(python='3.11.7', python_executable='/machine/venv/bin/python', torch='2.14.1'))
    (d/'result.json').write_text(json.dumps(rec, indent=1))
    nb = dict(nbformat=4, nbformat_minor=5, cells=[
        dict(cell_type='code', id='a', metadata=dict(tags=['injected-parameters']), execution_count=1, outputs=[],
             source=['# Parameters\n', 'seed = 0\n', 'out_dir = "/machine/out"\n', 'zhat_cache = "/machine/out/.zhat-cache"\n']),
        dict(cell_type='code', id='b', metadata={}, execution_count=2, source=['print(...)'], outputs=[
            dict(output_type='stream', name='stdout', text=['kernel python: /machine/venv/bin/python\n', f'run folder: {RUN}\n',
                                                            'Recall@1 95.26\n'])])],
              metadata=dict(papermill=dict(input_path='/machine/repo/nbs/experiments/run.ipynb',
                                           output_path=f'{RUN}/.attempt-1.ipynb',
                                           parameters=dict(seed=0, out_dir='/machine/out', zhat_cache='/machine/out/.zhat-cache'))))
    (d/'run.ipynb').write_text(json.dumps(nb, indent=1, ensure_ascii=False) + '\n')
    (root/'sweep.json').write_text(json.dumps(dict(cells=[dict(dataset='digits', method='gdml', seed=0, dir=RUN)]), indent=1))
    return d


def test_scrub_removes_paths_keeps_numbers_and_is_idempotent(tmp_path):
    d = write_run(tmp_path)
    assert scrub_records.main([str(tmp_path), '--check']) == 1
    assert scrub_records.main([str(tmp_path)]) == 0
    rec = json.loads((d/'result.json').read_text())
    assert 'python_executable' not in rec['versions'] and rec['versions']['torch'] == '2.14.1'
    assert rec['metrics'] == dict(recall_at_1=95.26000000000001, map_at_r=90.58)
    nb = json.loads((d/'run.ipynb').read_text())
    assert nb['cells'][0]['source'][2:] == ['out_dir = "../../.."\n', 'zhat_cache = "../../../.zhat-cache"\n']
    assert nb['cells'][1]['outputs'][0]['text'] == ['run folder: ../../../digits/gdml/seed0-0123456789\n', 'Recall@1 95.26\n']
    pm = nb['metadata']['papermill']
    assert (pm['input_path'], pm['output_path']) == ('nbs/experiments/run.ipynb', '.attempt-1.ipynb')
    assert pm['parameters'] == dict(seed=0, out_dir='../../..', zhat_cache='../../../.zhat-cache')
    assert json.loads((tmp_path/'sweep.json').read_text())['cells'][0]['dir'] == 'digits/gdml/seed0-0123456789'
    assert '/machine' not in ''.join(p.read_text() for p in tmp_path.rglob('*.json*'))
    assert not list(tmp_path.rglob('*.tmp'))                                   # atomic writes leave no temporary file
    before = {p: p.read_bytes() for p in tmp_path.rglob('*') if p.is_file()}
    assert scrub_records.main([str(tmp_path), '--check']) == 0 and scrub_records.main([str(tmp_path)]) == 0
    assert before == {p: p.read_bytes() for p in tmp_path.rglob('*') if p.is_file()}


def test_scrub_refuses_to_change_a_number(tmp_path, monkeypatch):
    d = write_run(tmp_path)
    bad = lambda rec: dict(rec, metrics=dict(recall_at_1=0.0), versions={})     # a scrubber that would touch a metric
    monkeypatch.setitem(scrub_records.SCRUBBERS, 'result.json', bad)
    with pytest.raises(ValueError, match='more than paths'): scrub_records.scrub_file(d/'result.json')
    assert 'python_executable' in (d/'result.json').read_text()               # left as it was


def test_committed_records_are_scrubbed():
    assert scrub_records.main([str(ROOT/'results'), '--check']) == 0
