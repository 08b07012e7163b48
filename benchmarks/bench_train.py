"""Training throughput: gdml's engine against a loop written like the authors' scripts.

Side by side in one process on one device, with the same model:
  * gdml: `fit_student` (Algorithm 2) and `fit_baseline` (a PML baseline) for one epoch: data resident
    on the device as uint8, index-gather batches, normalisation on the device, channels-last + bf16
    autocast + fused SGD on CUDA;
  * reference: a per-sample `Dataset` + `DataLoader` (batch 32, float32), as in the authors' code.
Prints images/s of each, their ratio, the model's training FLOPs per image (PyTorch's flop counter),
and the achieved share of the device's measured matmul peak (bf16 on CUDA, float32 on the CPU).

Candidate speed-ups of the student and baseline steps, timed beside the engine (--variants; each is
skipped with a note where it cannot run, and a failure is recorded without stopping the others):
  * eager:   the engine's step written out by hand over full batches (the loop the others change);
  * graph:   CUDA only. Student: the whole step (gather, normalise, forward, loss, backward, clipping,
             fused SGD) captured once in a CUDA graph and replayed per batch (fixed batch shape: the
             last partial batch is dropped). Baseline: the backbone's forward and backward graphed
             with `make_graphed_callables`, the PML loss eager (its pair selection has data-dependent
             shapes). Checked against the eager loop from the same weights and batches (losses).
  * compile: `torch.compile(model, mode=--compile-mode)` (default 'reduce-overhead': Inductor kernels replayed
             as CUDA graphs; on the CPU, Inductor's C++/OpenMP kernels around oneDNN's convolutions, where
             'default' is the mode to ask for); the first epoch, compiling, is timed apart.
--processes K1,K2: K concurrent processes each training the student with the engine, as
`gdml sweep --runs-per-gpu K` would; their summed images/s says how many runs to share a GPU.

usage: python benchmarks/bench_train.py [--device auto] [--n 4096] [--arch resnet18] [--json out.json]
           [--variants auto|engine,eager,graph,compile] [--processes 1,2,4]
"""
import argparse, copy, json, os, platform, subprocess, sys, tempfile, time
from pathlib import Path

import torch
from torch.utils.data import Dataset, DataLoader
from torch.utils.flop_counter import FlopCounterMode

import gdml
from gdml.engine import get_device, channel_stats, make_sgd, to_model_input
from gdml.protocol import DEFAULTS
from gdml.distill import make_student, fit_student, l2_distance_loss
from gdml.baselines import fit_baseline, make_loss


def sync(device):
    if device.type == 'cuda': torch.cuda.synchronize()


def measured_peak_flops(device, n=None, reps=10):
    "Measured dense matmul throughput (FLOP/s): bf16 on CUDA, float32 on the CPU."
    dtype = torch.bfloat16 if device.type == 'cuda' else torch.float32
    n = n or (8192 if device.type == "cuda" else 2048)
    a, b = torch.randn(n, n, device=device, dtype=dtype), torch.randn(n, n, device=device, dtype=dtype)
    for _ in range(2): a @ b
    sync(device); t = time.perf_counter()
    for _ in range(reps): a @ b
    sync(device)
    return 2 * n**3 * reps / (time.perf_counter() - t)


def train_flops_per_image(model, shape, device):
    "Forward + backward FLOPs of one image, from PyTorch's flop counter on a batch of 8."
    x = torch.randn(8, *shape, device=device)
    with FlopCounterMode(display=False) as fc:
        model(x).float().square().sum().backward()
    model.zero_grad(set_to_none=True)
    return fc.get_total_flops() / 8


class PerSample(Dataset):
    "The authors' style: one normalised float32 image per __getitem__."
    def __init__(self, x, z, mean, std): self.x, self.z, self.mean, self.std = x, z, mean, std
    def __len__(self): return len(self.x)
    def __getitem__(self, i):
        return (self.x[i].float() - self.mean[:, None, None]) / self.std[:, None, None], self.z[i]


def reference_epoch(model, x, z, mean, std, device, batch_size=32):
    "One epoch the way the authors' scripts train: DataLoader, batch 32, float32."
    loader = DataLoader(PerSample(x, z, mean, std), batch_size=batch_size, shuffle=True, num_workers=0)
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9, weight_decay=1e-4)
    model.to(device).train()
    sync(device); t = time.perf_counter()
    for xb, zb in loader:
        xb, zb = xb.to(device), zb.to(device)
        loss = l2_distance_loss(model(xb), zb)
        opt.zero_grad(); loss.backward()
        torch.nn.utils.clip_grad_value_(model.parameters(), 0.1); opt.step()
    sync(device)
    return len(x) / (time.perf_counter() - t)


def timed(fn, n, device):
    sync(device); t = time.perf_counter(); fn(); sync(device)
    return n / (time.perf_counter() - t)


def bf16(device, cache=True):
    "The engine's autocast (bf16 on CUDA); without the weight-cast cache where a CUDA graph is captured."
    if device.type != 'cuda': return torch.autocast('cpu', enabled=False)
    return torch.autocast('cuda', dtype=torch.bfloat16, cache_enabled=cache)


class StepLoop:
    """The engine's training step over full batches, written out so that it can be graphed or compiled.
    `kind`: 'student' (L2 distance to z-hat) or a baseline name (its PML loss on labels)."""
    def __init__(self, model, kind, xd, target, mean, std, device, batch_size, clip=0.1):
        self.model, self.kind, self.xd, self.target, self.mean, self.std = model, kind, xd, target, mean, std
        self.device, self.batch_size, self.clip = device, batch_size, clip
        self.params = [p for p in model.parameters() if p.requires_grad]
        self.opt = make_sgd(model.parameters(), lr=DEFAULTS['lr'], momentum=DEFAULTS['momentum'],
                            weight_decay=DEFAULTS['weight_decay'], device=device)
        self.loss_fn = None if kind == 'student' else make_loss(kind).to(device)
        self.forward = model

    def loss(self, idx, cache=True):
        with bf16(self.device, cache):
            out = self.forward(to_model_input(self.xd[idx], self.mean, self.std)).float()
            return l2_distance_loss(out, self.target[idx]) if self.loss_fn is None else self.loss_fn(out, self.target[idx])

    def step(self, idx, cache=True):
        self.opt.zero_grad(set_to_none=True)
        loss = self.loss(idx, cache)
        loss.backward()
        torch.nn.utils.clip_grad_value_(self.params, self.clip)
        self.opt.step()
        return loss.detach()

    def batches(self, g):
        perm = torch.randperm(len(self.xd), generator=g).to(self.device)
        return [b for b in perm.split(self.batch_size) if len(b) == self.batch_size]

    def epoch(self, g):
        return [self.step(b) for b in self.batches(g)]


class GraphedStudent(StepLoop):
    "The whole student step captured in one CUDA graph; a batch is an index copy and a replay."
    def __init__(self, *a, **k):
        super().__init__(*a, **k)
        self.idx = torch.zeros(self.batch_size, dtype=torch.long, device=self.device)
        start = {k: v.clone() for k, v in self.model.state_dict().items()}
        side = torch.cuda.Stream(); side.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(side):   # warm-up off the capture stream: cuDNN plans, momentum buffers
            for _ in range(3):
                self.idx.copy_(torch.randint(len(self.xd), (self.batch_size,), device=self.device))
                self.opt.zero_grad(set_to_none=True)
                self._captured()
        torch.cuda.current_stream().wait_stream(side)
        self.graph = torch.cuda.CUDAGraph()
        self.opt.zero_grad(set_to_none=True)
        with torch.cuda.graph(self.graph): self.static_loss = self._captured()
        with torch.no_grad():   # back to the starting weights, in place (the graph holds these tensors)
            for k, v in self.model.state_dict().items(): v.copy_(start[k])
            for st in self.opt.state.values():
                if st.get('momentum_buffer') is not None: st['momentum_buffer'].zero_()

    def _captured(self):
        loss = self.loss(self.idx, cache=False)
        loss.backward()
        torch.nn.utils.clip_grad_value_(self.params, self.clip)
        self.opt.step()
        return loss.detach()

    def step(self, idx, cache=True):
        self.idx.copy_(idx); self.graph.replay()
        return self.static_loss.clone()


class GraphedBackbone(StepLoop):
    "The backbone's forward and backward as CUDA graphs (make_graphed_callables); loss and optimizer eager."
    def __init__(self, *a, **k):
        super().__init__(*a, **k)
        sample = to_model_input(self.xd[:self.batch_size], self.mean, self.std)
        with bf16(self.device, cache=False):
            self.forward = torch.cuda.make_graphed_callables(self.model, (sample,))

    def step(self, idx, cache=True): return super().step(idx, cache=False)


class CompiledLoop(StepLoop):
    "The step with `torch.compile(model, mode)`."
    def __init__(self, *a, mode='reduce-overhead', **k):
        super().__init__(*a, **k)
        self.forward = torch.compile(self.model, mode=mode)


VARIANTS = dict(eager=StepLoop, graph=None, compile=CompiledLoop)


def time_variant(name, kind, model, xd, target, mean, std, device, batch_size, flops, peak, compile_mode, ref_losses=None):
    "Images/s of one variant on a copy of `model` (one untimed epoch first), or why it was skipped or failed."
    if name == 'graph' and device.type != 'cuda': return dict(skipped='needs CUDA')
    m = copy.deepcopy(model)
    t0 = time.perf_counter()
    try:
        cls = (GraphedStudent if kind == 'student' else GraphedBackbone) if name == 'graph' else VARIANTS[name]
        loop = cls(m, kind, xd, target, mean, std, device, batch_size, **({'mode': compile_mode} if name == 'compile' else {}))
        g = torch.Generator().manual_seed(0)
        losses = torch.stack(loop.epoch(g)).float().cpu()   # warm-up: compiling, capture, autotuning
        first_s = time.perf_counter() - t0
        n = len(loop.batches(torch.Generator().manual_seed(1))) * batch_size
        ips = timed(lambda: loop.epoch(g), n, device)
    except Exception as e:
        return dict(error=f"{type(e).__name__}: {e}".splitlines()[0][:300], seconds_before_failing=round(time.perf_counter() - t0, 1))
    out = dict(images_per_s=ips, share_of_peak=ips * flops / peak, seconds_per_60k_epoch=60000 / ips,
               seconds_per_50_epochs_60k=50 * 60000 / ips, first_epoch_s=first_s, losses=losses)
    return out


def loss_agreement(a, b):
    "Relative difference of the mean warm-up-epoch losses of two variants (same weights, same batches)."
    if a is None or b is None: return None
    return float(abs(a.mean() - b.mean()) / max(abs(b.mean()), 1e-12))


def concurrent_student(k, a, device):
    "Summed images/s of `k` processes each training the student with the engine at once (a start barrier aligns them)."
    with tempfile.TemporaryDirectory() as tmp:
        cmd = [sys.executable, __file__, '--device', str(device), '--arch', a.arch, '--channels', str(a.channels),
               '--size', str(a.size), '--batch-size', str(a.batch_size), '--n', str(a.n_proc),
               '--worker', tmp, '--workers-total', str(k)]
        procs = [subprocess.Popen(cmd + ['--worker-id', str(i)], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
                 for i in range(k)]
        outs = [p.communicate(timeout=a.process_timeout)[0] for p in procs]
        if any(p.returncode for p in procs):
            return dict(error=next(o for p, o in zip(procs, outs) if p.returncode).strip().splitlines()[-1][:300])
        res = [json.loads((Path(tmp)/f'{i}.json').read_text()) for i in range(k)]
    wall = max(r['end'] for r in res) - min(r['start'] for r in res)
    return dict(processes=k, images_per_s_total=sum(r['n'] for r in res) / wall,
                images_per_s_each=[r['n'] / (r['end'] - r['start']) for r in res])


def worker_main(a, device):
    "One process of --processes: warm up, wait for the others, train one timed epoch, write its times."
    g = torch.Generator().manual_seed(a.worker_id)
    x = torch.randint(0, 256, (a.n, a.channels, a.size, a.size), dtype=torch.uint8, generator=g)
    z = torch.randn(a.n, 2, generator=g)
    mean, std = channel_stats(x)
    kw = dict(mean=mean, std=std, batch_size=a.batch_size, device=device, progress=False)
    model = make_student(a.arch, a.channels, 2)
    fit_student(model, x[:1024], z[:1024], epochs=1, **kw)
    Path(a.worker, f'ready-{a.worker_id}').touch()
    deadline = time.time() + a.process_timeout
    while len(list(Path(a.worker).glob('ready-*'))) < a.workers_total and time.time() < deadline: time.sleep(0.05)
    sync(device); start = time.time()
    fit_student(model, x, z, epochs=1, **kw)
    sync(device); end = time.time()
    Path(a.worker, f'{a.worker_id}.json').write_text(json.dumps(dict(n=a.n, start=start, end=end)))


def git_commit():
    try: return subprocess.check_output(['git', 'rev-parse', '--short', 'HEAD'], text=True,
                                        stderr=subprocess.DEVNULL).strip()
    except Exception: return 'unknown'


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument('--device', default='auto')
    ap.add_argument('--n', type=int, default=None, help='images per epoch (default: 60000 on CUDA, 2048 on the CPU)')
    ap.add_argument('--arch', default='resnet18', choices=['resnet18', 'small_cnn'])
    ap.add_argument('--channels', type=int, default=1)
    ap.add_argument('--size', type=int, default=28)
    ap.add_argument('--batch-size', type=int, default=128, help="gdml's batch size (the reference uses 32)")
    ap.add_argument('--baseline', default='multisim')
    ap.add_argument('--json', default=None, help='write the numbers to this JSON file too')
    ap.add_argument('--variants', default='auto',
                    help="comma-separated of engine, eager, graph, compile (auto: all on CUDA, engine on the CPU)")
    ap.add_argument('--compile-mode', default='reduce-overhead', help="torch.compile mode (default reduce-overhead)")
    ap.add_argument('--processes', default='', help='comma-separated process counts for the concurrency test, e.g. 1,2,4')
    ap.add_argument('--n-proc', type=int, default=None, help='images per process in the concurrency test (default --n)')
    ap.add_argument('--process-timeout', type=float, default=300.0)
    ap.add_argument('--worker', default=None, help=argparse.SUPPRESS)
    ap.add_argument('--worker-id', type=int, default=0, help=argparse.SUPPRESS)
    ap.add_argument('--workers-total', type=int, default=1, help=argparse.SUPPRESS)
    a = ap.parse_args(argv)
    device = get_device(a.device)
    if a.worker:
        a.n = a.n or 1024
        return worker_main(a, device)
    variants = (['engine', 'eager', 'graph', 'compile'] if device.type == 'cuda' else ['engine']) \
        if a.variants == 'auto' else [v.strip() for v in a.variants.split(',') if v.strip()]
    bad = [v for v in variants if v not in ('engine', *VARIANTS)]
    if bad: ap.error(f"unknown variant(s) {', '.join(bad)}; use engine, {', '.join(VARIANTS)}")
    n = a.n or (60000 if device.type == 'cuda' else 2048)
    g = torch.Generator().manual_seed(0)
    x = torch.randint(0, 256, (n, a.channels, a.size, a.size), dtype=torch.uint8, generator=g)
    y = torch.randint(0, 10, (n,), generator=g)
    z = torch.randn(n, 2, generator=g)
    mean, std = channel_stats(x)
    kw = dict(mean=mean, std=std, batch_size=a.batch_size, device=device, progress=False)

    model = make_student(a.arch, a.channels, 2).to(device)
    flops = train_flops_per_image(model, (a.channels, a.size, a.size), device)
    peak = measured_peak_flops(device)
    init = copy.deepcopy(model)   # the variants start from the same weights
    # one warm-up epoch each (allocator, cuDNN autotuning), then the timed one
    fit_student(model, x, z, epochs=1, **kw)
    student_ips = timed(lambda: fit_student(model, x, z, epochs=1, **kw), n, device)
    fit_baseline(a.baseline, model, x, y, epochs=1, **kw)
    baseline_ips = timed(lambda: fit_baseline(a.baseline, model, x, y, epochs=1, **kw), n, device)
    ref_model = make_student(a.arch, a.channels, 2)
    m_ref = min(n, 4096 if device.type == 'cuda' else 1024)
    reference_epoch(ref_model, x[:256], z[:256], mean, std, device)
    ref_ips = reference_epoch(ref_model, x[:m_ref], z[:m_ref], mean, std, device)

    name = torch.cuda.get_device_name(device) if device.type == 'cuda' else f"CPU ({platform.processor() or platform.machine()}, {torch.get_num_threads()} threads)"
    out = dict(device=name, date=time.strftime('%Y-%m-%d'), commit=git_commit(), torch=torch.__version__, gdml=gdml.__version__,
               arch=a.arch, image=[a.channels, a.size, a.size], n_images=n, gdml_batch_size=a.batch_size,
               train_gflop_per_image=flops / 1e9, measured_peak_tflops=peak / 1e12,
               student_images_per_s=student_ips, baseline_images_per_s=baseline_ips, baseline=a.baseline,
               reference_images_per_s=ref_ips, speedup_student_vs_reference=student_ips / ref_ips,
               student_share_of_peak=student_ips * flops / peak,
               student_seconds_per_60k_epoch=60000 / student_ips,
               student_seconds_per_50_epochs_60k=50 * 60000 / student_ips,
               variants={}, compile_mode=a.compile_mode if 'compile' in variants else None, concurrency=[])
    def save():   # after every measurement: a bench cut off by its time limit keeps what it measured
        if a.json:
            Path(a.json).parent.mkdir(parents=True, exist_ok=True)
            Path(a.json).write_text(json.dumps(out, indent=1) + '\n')
    save()
    for k, v in out.items():
        if k not in ('variants', 'concurrency'): print(f"{k:32s} {v:.4g}" if isinstance(v, float) else f"{k:32s} {v}", flush=True)

    extra = [v for v in variants if v != 'engine']
    if extra:
        xd, zd, yd = x.to(device), z.to(device), y.to(device)
        init = init.to(device)
        if device.type == 'cuda': init = init.to(memory_format=torch.channels_last)
        md, sd = mean.to(device), std.to(device)
        for kind, target in (('student', zd), (a.baseline, yd)):
            eager_losses = None
            for v in sorted(extra, key=lambda v: v != 'eager'):   # eager first: the others are checked against it
                r = time_variant(v, kind, init, xd, target, md, sd, device, a.batch_size, flops, peak, a.compile_mode)
                losses = r.pop('losses', None)
                if v == 'eager': eager_losses = losses
                elif losses is not None: r['loss_rel_diff_vs_eager'] = loss_agreement(losses, eager_losses)
                out['variants'][f'{kind}_{v}'] = r; save()
                print(f"{kind + ' ' + v:24s} " + (f"{r['images_per_s']:.4g} img/s, first epoch {r['first_epoch_s']:.1f} s, "
                                                 f"loss vs eager {r.get('loss_rel_diff_vs_eager')}"
                                                 if 'images_per_s' in r else str(r)), flush=True)
    for k in [int(v) for v in a.processes.split(',') if v.strip()]:
        a.n_proc = a.n_proc or n
        out['concurrency'].append(concurrent_student(k, a, device)); save()
        print(f"{k} concurrent student processes: {out['concurrency'][-1]}", flush=True)
    return out


if __name__ == '__main__': main()
