"""Seconds per meta-step of the original PyTorch code: the original's side of `peer_compare.py`.

    PEER_REPO=<TaskDiscovery checkout> python benchmarks/peer_timing.py \
        --learner=mlp --encoder=mlp --nsteps=10 --batch=128 --h_dim=32 --warmup=2 --timed=7

Runs in the original's Python (torch, higher, pytorch-lightning 1.5.1: benchmarks/README.md,
"Setting up the original"), never in this project's environment. The original's code is
imported at run time from the checkout named by `--peer_repo` (or `PEER_REPO`); nothing of it
is copied here, and nothing of it is patched. Its own `ASUniformityTraining` is built by its own
`__init__` (hyperparameters as `train-as-uniformity.py` builds them with the default discovery
YAML: `peer_oracle.hparams`), with CIFAR-10 replaced by in-memory synthetic N(0, 1) images of
shape [3, 32, 32] (`peer_oracle.install_stubs`): `--nsteps` train batches of `--batch` images
(inner step t trains on batch t, each learner on its half, data_mode='meta') and one held-out
batch of `--batch` images; d = `--h_dim` linear tasks.

One meta-step is what pytorch_lightning 1.5 runs for one training batch (a task index, fetched
from the module's own `train_dataloader` outside the timed region): `training_step`, then the
optimizer's `zero_grad`, `loss.backward()` and `step` (Adam from `configure_optimizers`).
`--warmup` untimed steps (the first one's time reported as `first_step_s`), then `--timed`
timed ones.

Prints one JSON line on stdout (everything the original prints goes to stderr):
  * `median_s`, `times_s`, `first_step_s`: wall seconds per meta-step;
  * `median_cpu_s`: CPU seconds of this process (all its threads) per timed step;
  * `forward_median_s`, `backward_median_s`, `optimizer_median_s`: the three parts;
  * `peak_rss_gb`: `ru_maxrss` / 1e6 after the timed steps (the unit of `peer_compare.py`'s own
    records), `peak_rss_mb` the same in MiB;
  * `other_cpu_frac`: per timed step, the share of the machine's CPU time (all cores) taken by
    other processes or stolen by the host, from /proc/stat; a step is clean below 0.05.
    `n_clean`, `median_clean_s`: the clean steps; `contended`: fewer than min(5, timed) clean;
    `cpu_contention`: `own_cpu_frac` and `other_cpu_frac` over the whole timed window;
  * `loss`, `grad_norm` (the encoder's gradient after the last timed step), `config`, `env`.
"""
import argparse
import contextlib
import importlib.metadata
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import time
import warnings

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import peer_oracle  # noqa: E402  (beside this script: builds the original's module)

ARCHS = ('mlp', 'resnet18', 'vit')
CLEAN = 0.05


def parse_args(argv=None):
  p = argparse.ArgumentParser(description=__doc__,
                              formatter_class=argparse.RawDescriptionHelpFormatter)
  p.add_argument('--learner', choices=ARCHS, default='mlp',
                 help="learners (the original's as_arch)")
  p.add_argument('--encoder', choices=ARCHS, default='mlp',
                 help="task encoder's backbone (the original's arch)")
  p.add_argument('--nsteps', type=int, default=10, help='T, unrolled inner steps')
  p.add_argument('--batch', type=int, default=128,
                 help='batch_size: images per inner step (each learner sees half) and held out')
  p.add_argument('--h_dim', type=int, default=32, help='embedding width = d, the linear tasks')
  p.add_argument('--warmup', type=int, default=2, help='untimed meta-steps first (at least 1)')
  p.add_argument('--timed', type=int, default=7, help='timed meta-steps')
  p.add_argument('--threads', type=int, default=os.cpu_count(), help='torch threads')
  p.add_argument('--seed', type=int, default=0, help="the original's seed (its weights)")
  p.add_argument('--data_seed', type=int, default=0)
  p.add_argument('--peer_repo', default=os.environ.get('PEER_REPO', ''),
                 help='checkout of the original (default: $PEER_REPO)')
  p.add_argument('--out', default='', help='also write the JSON here')
  args = p.parse_args(argv)
  if args.warmup < 1 or args.timed < 1:
    p.error('--warmup and --timed must be at least 1')
  if args.batch % 2:
    p.error("--batch must be even: the two learners train on its halves (data_mode='meta')")
  if not os.path.isfile(os.path.join(args.peer_repo, 'models', 'as_uniformity.py')):
    p.error('--peer_repo (or PEER_REPO) must name a checkout of EPFL-VILAB/TaskDiscovery')
  args.peer_repo = os.path.abspath(args.peer_repo)
  return args


class CpuClock:
  """Wall time, this process's CPU time and the machine's busy CPU time, read together."""

  def __init__(self):
    self.tick = os.sysconf('SC_CLK_TCK')

  def machine_busy_s(self):
    try:
      with open('/proc/stat') as f:
        fields = [int(v) for v in f.readline().split()[1:9]]
    except (OSError, ValueError):
      return None
    user, nice, system, _idle, _iowait, irq, softirq, steal = (fields + [0] * 8)[:8]
    return (user + nice + system + irq + softirq + steal) / self.tick

  def read(self):
    return time.perf_counter(), time.process_time(), self.machine_busy_s()

  @staticmethod
  def shares(start, end):
    """(own, other) share of the machine's CPU time between two readings."""
    wall = (end[0] - start[0]) * (os.cpu_count() or 1)
    own = end[1] - start[1]
    if start[2] is None or end[2] is None or wall <= 0:
      return own / wall if wall > 0 else None, None
    return own / wall, max(0.0, (end[2] - start[2]) - own) / wall


def synthetic_batches(torch, args):
  """T train batches and one held-out batch of N(0, 1) images, as the original's loader gives
  them."""
  g = torch.Generator().manual_seed(args.data_seed)
  images = lambda: torch.randn(args.batch, 3, 32, 32, generator=g)
  train = [peer_oracle.cifar_batch(torch, images()) for _ in range(args.nsteps)]
  return train, [peer_oracle.cifar_batch(torch, images())]


def build(torch, args):
  """The original's module and its Adam, built by its own code."""
  from models.as_uniformity import ASUniformityTraining
  import utils as peer_utils
  peer_utils.set_seeds(args.seed)
  model = ASUniformityTraining(**peer_oracle.hparams(
      args.peer_repo, arch=args.encoder, as_arch=args.learner, nsteps=args.nsteps,
      batch_size=args.batch, h_dim=args.h_dim, n_linear_tasks=args.h_dim, seed=args.seed))
  model.train()  # as Lightning's fit loop does before the first batch
  return model, model.configure_optimizers()


def task_indices(model):
  """The module's own task loader (batches of one task index), cycled."""
  while True:
    yield from model.train_dataloader()


def meta_step(model, opt, batch, i):
  """One training batch as pytorch_lightning 1.5 runs it: (logs, seconds of the three parts)."""
  t0 = time.perf_counter()
  logs = model.training_step(batch, i)
  t1 = time.perf_counter()
  opt.zero_grad()
  logs['loss'].backward()
  t2 = time.perf_counter()
  opt.step()
  return logs, (t1 - t0, t2 - t1, time.perf_counter() - t2)


def peer_commit(peer_repo):
  out = subprocess.run(['git', '-C', peer_repo, 'rev-parse', 'HEAD'], capture_output=True,
                       text=True)
  return out.stdout.strip() or None


def run(args):
  clock = CpuClock()
  import torch
  torch.set_num_threads(args.threads)
  batches = synthetic_batches(torch, args)
  peer_oracle.enter_checkout(args.peer_repo, batches)
  t = time.perf_counter()
  model, opt = build(torch, args)
  setup_s = time.perf_counter() - t
  tasks = task_indices(model)
  rss_setup = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
  first_step_s, times, cpu, parts, others = None, [], [], [], []
  window = None
  for i in range(args.warmup + args.timed):
    batch = next(tasks)  # outside the timed region, as Lightning fetches it
    start = clock.read()
    if i == args.warmup:
      window = start
    logs, split = meta_step(model, opt, batch, i)
    end = clock.read()
    wall = end[0] - start[0]
    own, other = clock.shares(start, end)
    print(f'[peer_timing] step {i} ({"timed" if i >= args.warmup else "warm-up"}): '
          f'{wall:.3f} s, loss {float(logs["loss"]):.5f}, other CPU {other}',
          file=sys.stderr, flush=True)
    if i == 0:
      first_step_s = wall
    if i >= args.warmup:
      times.append(wall)
      cpu.append(end[1] - start[1])
      parts.append(split)
      others.append(other)
  peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux
  own, other = clock.shares(window, clock.read())
  clean = [s for s, o in zip(times, others) if o is not None and o < CLEAN]
  grads = [p.grad for p in model.encoder.parameters() if p.requires_grad and p.grad is not None]
  median = statistics.median
  import pytorch_lightning
  return {
      'impl': 'EPFL-VILAB/TaskDiscovery (PyTorch)',
      'median_s': median(times), 'times_s': [round(s, 4) for s in times],
      'first_step_s': first_step_s, 'median_cpu_s': median(cpu),
      'forward_median_s': median(p[0] for p in parts),
      'backward_median_s': median(p[1] for p in parts),
      'optimizer_median_s': median(p[2] for p in parts),
      'peak_rss_gb': peak / 1e6, 'peak_rss_mb': round(peak / 1024, 1),
      'rss_after_setup_gb': rss_setup / 1e6, 'setup_s': setup_s,
      'other_cpu_frac': [None if o is None else round(o, 3) for o in others],
      'n_clean': len(clean), 'median_clean_s': median(clean) if clean else None,
      'contended': len(clean) < min(5, len(times)),
      'cpu_contention': {'own_cpu_frac': None if own is None else round(own, 3),
                         'other_cpu_frac': None if other is None else round(other, 3)},
      'loss': float(logs['loss']), 'ag_loss': float(logs['ag_loss']),
      'grad_norm': float(sum((g.double() ** 2).sum() for g in grads) ** 0.5),
      'config': {k: getattr(args, k) for k in ('learner', 'encoder', 'nsteps', 'batch', 'h_dim',
                                               'warmup', 'timed', 'threads', 'seed',
                                               'data_seed')},
      'env': {'python': platform.python_version(), 'torch': torch.__version__,
              'higher': importlib.metadata.version('higher'),
              'pytorch_lightning': pytorch_lightning.__version__,
              'torch_threads': torch.get_num_threads(), 'cpu_count': os.cpu_count(),
              'machine': platform.processor() or platform.machine(),
              'peer_commit': peer_commit(args.peer_repo)},
  }


def main(argv=None):
  args = parse_args(argv)
  for name in ('OMP_NUM_THREADS', 'MKL_NUM_THREADS'):  # before torch is imported
    os.environ.setdefault(name, str(args.threads))
  warnings.filterwarnings('ignore')
  out = os.path.abspath(args.out) if args.out else ''  # the checkout becomes the cwd
  with contextlib.redirect_stdout(sys.stderr):  # the original prints its modules
    result = run(args)
  line = json.dumps(result)
  print(line, flush=True)
  if out:
    with open(out, 'w') as f:
      f.write(line + '\n')


if __name__ == '__main__':
  main()
