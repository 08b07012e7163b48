#!/usr/bin/env bash
# Download, into .whl/, the wheels of gdml's requirements that the GPU machine's image lacks, for
# its Python (CPython 3.12, manylinux x86-64). That machine has no network: what it lacks must travel
# in the working tree. `offline_gpu/gpu_pack.py site` then turns them into .gpu/site.tar.xz (about
# half their size), which `offline_gpu/gpu_stage.sh setup` unpacks there.
#
# Which packages: settings.ini's requirements and what they pull in, resolved for Python 3.12,
# minus the packages the GPU node's image already has (torch, torchvision, numpy,
# pandas, scipy, scikit-learn, matplotlib, seaborn, tqdm, pillow, pyyaml, psutil, cloudpickle, ...).
# Pinned to the versions of the development venv, where the tests pass.
# Left out, because nothing on gdml's run path imports them (each is optional to its user):
#   debugpy (ipykernel's debugger), jedi + parso (IPython's completion), ipywidgets +
#   widgetsnbextension + jupyterlab-widgets (tqdm.auto falls back to the text bar): 12.5 MB of wheels.
#
# usage: offline_gpu/gpu_wheels.sh [DEST]   (default .whl, git-ignored); re-running skips what is there
set -euo pipefail
cd "$(dirname "$0")/.."
DEST=${1:-.whl}
PY=${PYTHON:-python3}
PINS=(
  pytorch-metric-learning==2.9.0 faiss-cpu==1.15.1
  papermill==2.7.0 nbclient==0.11.0 nbformat==5.11.1 fastjsonschema==2.22.3 jsonschema==4.26.0
  jsonschema-specifications==2025.9.1 referencing==0.37.0 rpds-py==2026.9.1 tenacity==9.2.1 entrypoints==0.4.2
  ipykernel==7.4.0 ipython==9.18.1 ipython-pygments-lexers==1.1.1 prompt-toolkit==3.0.53 wcwidth==0.9.4
  jupyter-client==8.10.0 jupyter-core==5.9.1 traitlets==5.16.1 comm==0.2.3 matplotlib-inline==0.2.2
  nest-asyncio2==1.7.4 lazy-importer==0.1.0 pyzmq==27.3.0 tornado==6.6.1 platformdirs==4.14.7
  pexpect==4.9.0 ptyprocess==0.7.0 stack-data==0.6.3 asttokens==3.0.2 executing==2.3.0 pure-eval==0.2.4
  dask==2026.8.0 distributed==2026.8.0 partd==1.4.2 locket==1.0.0 tblib==3.2.2 zict==3.0.0
  importlib-metadata==10.2.0 tzdata==2026.6
)
PLATFORMS=()
for p in manylinux_2_28 manylinux_2_27 manylinux_2_26 manylinux_2_17 manylinux2014 manylinux_2_12 manylinux2010 \
         manylinux_2_5 manylinux1; do PLATFORMS+=(--platform "${p}_x86_64"); done
mkdir -p "$DEST"
"$PY" -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
  "${PLATFORMS[@]}" -d "$DEST" "${PINS[@]}"
n=$(ls "$DEST"/*.whl | wc -l)
if [ "$n" -ne "${#PINS[@]}" ]; then
  echo "gpu_wheels: $DEST holds $n wheels, expected ${#PINS[@]} (one per pin); remove the stale ones" >&2; exit 1
fi
ls -lS "$DEST"/*.whl | awk '{printf "%9.2f MB  %s\n", $5/1e6, $NF}'
du -cb "$DEST"/*.whl | tail -1 | awk '{printf "%9.2f MB  total (%d wheels)\n", $1/1e6, '"$n"'}'

# Every requirement of a carried wheel must be carried too or be on the GPU image (its package
# list, below); versions there are unknown, so `gpu_stage.sh setup` also imports them.
"$PY" - "$DEST" <<'EOF'
import sys, zipfile
from pathlib import Path
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name as canon
DEVICE = set(map(canon, """absl-py accelerate aiofiles aiohappyeyeballs aiohttp aiosignal annotated-doc anyio attrs botorch
build certifi charset-normalizer chex click cloudpickle cmake colorama contourpy coverage cuda-bindings cuda-core
cuda-pathfinder cuda-toolkit cupy-cuda13x cycler cython diffrax e3nn einops equinox etils execnet filelock flatbuffers
flax fonttools formulaic frozenlist fsspec gpytorch grpcio h11 h5py hf-xet httpcore httpx huggingface-hub humanize
hypothesis idna imageio iniconfig interface-meta jax jax-cuda13-pjrt jax-cuda13-plugin jaxlib jaxtyping jinja2 joblib
kiwisolver lazy-loader lightning lightning-utilities linear-operator lineax llvmlite lxml markdown markdown-it-py
markupsafe matplotlib mdurl meson ml-dtypes mpi4py mpmath msgpack multidict multipledispatch mypy-extensions nanobind
narwhals networkx ninja numba numba-cuda numpy numpyro nvidia-cublas nvidia-cuda-cupti nvidia-cuda-nvrtc
nvidia-cuda-runtime nvidia-cudnn-cu13 nvidia-cufft nvidia-cufile nvidia-curand nvidia-cusolver nvidia-cusparse
nvidia-cusparselt-cu13 nvidia-ml-py nvidia-nccl-cu13 nvidia-nvjitlink nvidia-nvshmem-cu13 nvidia-nvtx onnx onnx-ir
onnxruntime onnxscript opencv-python-headless optax opt-einsum opt-einsum-fx optimistix orbax-checkpoint packaging
pandas pathspec patsy peft pillow pip pluggy portalocker prometheus-client propcache protobuf psutil pyarrow pybind11
py-cpuinfo pygments pyparsing pyproject-hooks pyre-extensions pytest pytest-benchmark pytest-cov pytest-mock
pytest-timeout pytest-xdist python-dateutil pytorch-lightning pyyaml regex requests rich sacrebleu safetensors
scikit-build-core scikit-image scikit-learn scipy seaborn sentencepiece sentence-transformers setuptools shellingham
simplejson six sortedcontainers statsmodels sympy tabulate tensorboard tensorboard-data-server tensorstore
threadpoolctl tifffile tiktoken timm tokenizers toolz torch torchaudio torchdiffeq torch-geometric torchmetrics
torchvision tqdm transformers treescope triton typer typing-extensions typing-inspect urllib3 uvloop wadler-lindig
werkzeug wheel wrapt xarray xxhash yarl zipp""".split()))
OPTIONAL = {'debugpy', 'jedi', 'parso', 'ipywidgets', 'widgetsnbextension', 'jupyterlab-widgets'}  # left out on purpose
env = dict(python_version='3.12', python_full_version='3.12.3', sys_platform='linux', platform_system='Linux',
           os_name='posix', platform_machine='x86_64', implementation_name='cpython', platform_python_implementation='CPython',
           extra='')
carried, needs = set(), {}
for w in Path(sys.argv[1]).glob('*.whl'):
    with zipfile.ZipFile(w) as z:
        meta = z.read(next(n for n in z.namelist() if n.endswith('.dist-info/METADATA'))).decode()
    name = next(l.split(':', 1)[1].strip() for l in meta.splitlines() if l.startswith('Name:'))
    carried.add(canon(name))
    for l in meta.splitlines():
        if l.startswith('Requires-Dist:'):
            r = Requirement(l.split(':', 1)[1].strip())
            if r.marker is None or r.marker.evaluate(env): needs.setdefault(canon(r.name), []).append(name)
missing = {n: by for n, by in needs.items() if n not in carried | DEVICE | OPTIONAL}
for n, by in sorted(missing.items()): print(f"gpu_wheels: {n} (needed by {', '.join(by)}) is neither carried nor on the GPU image")
print(f"gpu_wheels: {len(carried)} carried wheels; their requirements: {len(needs)} names, "
      f"{sum(n in carried for n in needs)} carried, {sum(n in DEVICE for n in needs)} on the image, "
      f"{sum(n in OPTIONAL for n in needs)} optional and left out, {len(missing)} missing")
sys.exit(1 if missing else 0)
EOF
