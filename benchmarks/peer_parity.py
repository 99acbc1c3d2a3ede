"""The same numbers as the original: meta-loss, meta-gradient and inner trajectory, side by side.

    PEER_REPO=<TaskDiscovery checkout> PEER_PY=<python with torch> \
        python benchmarks/peer_parity.py [--families=mlp,resnet18] [--steps=1,5] \
            [--dtypes=float32,float64]

Runs from this project's environment. The original side runs in `PEER_PY` as a subprocess
(`peer_oracle.py`, beside this file, which imports the original's classes from `PEER_REPO`);
the two exchange arrays through .npz files, so neither environment needs the other's packages
(benchmarks/README.md, "Setting up the original", sets up the original's).

One small setting in both, with identical parameters and data:
  * synthetic N(0, 1) CIFAR-shaped images (seeded here): T train batches of B images, one
    held-out batch of B; inner step t trains on train batch t, each learner on its half
    (data_mode='meta'), both learners predict the whole held-out batch;
  * the original builds its own networks (seeded); their initial weights, task encoder and
    both learners, are converted into this project's pytrees (`task_discovery.original.weights`), and the
    original's task direction j becomes this project's direction -w_j (the two name the
    classes of a task the other way round: `weights.directions_from_original`);
  * this project's config: `config.base()` with the family's networks, d = h_dim tasks,
    `inner.num_steps` = T, `inner.batch_size` = `inner.heldout_batch_size` = B. Nothing of
    `base()` needs changing to reproduce the original here.

Compared (relative difference of a quantity: max over its arrays of
max|ours - original| / max|original|):
  * `learner params step t`: both learners' parameters after inner step t (this project:
    `inner_loop.weight_space`, the learners' SGD step, fed by its encoder's soft labels);
  * `learner update step t`: the same minus the initial parameters (a stricter scale);
  * `agreement term`, `uniformity term`, `meta-loss J`: this project's `meta.make_meta_loss`
    (for MLP learners it takes its sample-space form, `inner_loop.sample_space`);
  * `meta-grad J`: d J / d theta over the encoder's trainable parameters, and
    `meta-grad agreement`: the gradient of the agreement term alone, through the unroll.

Columns: `max_rel`, this project against the original; for float32 settings also
`orig_f32_err` and `ours_f32_err`, each side's own float32 rounding error: its distance to this
project's float64 run on the same weights and data (in float64 the two sides agree to about
1e-12, so that run stands for the exact value). A float32 difference between the two sides is
rounding when it is of the order of these two. The last line is
`max_rel=<the largest max_rel in the table>`.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

import jax
import jax.numpy as jnp
import numpy as np

from task_discovery import config as config_lib
from task_discovery import models
from task_discovery.method import inner_loop
from task_discovery.method import estimators
from task_discovery.method import meta
from task_discovery.method import optimizers
from task_discovery.models import task_network
from task_discovery.original import weights

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, HERE)

BATCH = {"mlp": 32, "resnet18": 16}
H_DIM = 32


def parse_args(argv=None):
  p = argparse.ArgumentParser(description=__doc__,
                              formatter_class=argparse.RawDescriptionHelpFormatter)
  p.add_argument("--families", default="mlp,resnet18")
  p.add_argument("--steps", default="1,5", help="values of T (unrolled inner steps)")
  p.add_argument("--dtypes", default="float32,float64")
  p.add_argument("--batch_mlp", type=int, default=BATCH["mlp"])
  p.add_argument("--batch_resnet18", type=int, default=BATCH["resnet18"])
  p.add_argument("--task", type=int, default=3, help="index j of the original's task")
  p.add_argument("--seed", type=int, default=0, help="the original's seed (its weights)")
  p.add_argument("--data_seed", type=int, default=0)
  p.add_argument("--threads", type=int, default=2)
  p.add_argument("--out", default="", help="also write the table as JSON here")
  return p.parse_args(argv)


def rel(ours, original) -> float:
  """max|ours - original| / max|original| (0 when both are 0)."""
  ours, original = np.asarray(ours, np.float64), np.asarray(original, np.float64)
  scale = np.max(np.abs(original))
  diff = np.max(np.abs(ours - original))
  return float(diff / scale) if scale > 0 else float(diff)


def tree_rel(ours: dict, original: dict, *, where: bool = False):
  """`rel` of every array of two equally keyed flat dicts, the largest (`where`: and the
  name of its array)."""
  if set(ours) != set(original):
    raise ValueError(f"different arrays: {sorted(set(ours) ^ set(original))}")
  value, name = max((rel(ours[k], original[k]), k) for k in original)
  return (value, name) if where else value


def run_oracle(settings: dict, x_train, x_val, workdir: str) -> dict:
  peer_py, peer_repo = os.environ.get("PEER_PY"), os.environ.get("PEER_REPO")
  if not peer_py or not peer_repo:
    sys.exit("set PEER_PY (a Python with torch, higher, pytorch-lightning) and PEER_REPO "
             "(a checkout of the original): benchmarks/README.md, \"Setting up the original\"")
  tag = f"{settings['family']}_{settings['dtype']}"
  inputs, outputs = (os.path.join(workdir, f"{tag}_{s}.npz") for s in ("in", "out"))
  np.savez(inputs, settings=json.dumps(settings), x_train=x_train, x_val=x_val)
  env = dict(os.environ, PEER_REPO=peer_repo, OMP_NUM_THREADS=str(settings["threads"]))
  result = subprocess.run([peer_py, os.path.join(HERE, "peer_oracle.py"), inputs, outputs],
                          env=env, capture_output=True, text=True)
  if result.returncode:
    sys.exit(f"the original's side failed:\n{result.stderr[-4000:]}")
  with np.load(outputs) as f:
    return {k: f[k] for k in f.files}


def section(flat: dict, prefix: str) -> dict:
  return {k[len(prefix):]: v for k, v in flat.items() if k.startswith(prefix)}


def learner_state(flat: dict, i: int) -> dict:
  """Learner i's arrays of `AgreementLoss.models.named_parameters()` names (`models.i.*`)."""
  return section(flat, f"models.{i}.")


def stack_learners(trees):
  return jax.tree.map(lambda *a: np.stack(a)[None], *trees)  # [M = 1, L = 2, ...]


def project_side(family: str, dtype: str, nsteps: int, batch: int, peer: dict, x_train,
                 x_val, task: int):
  """This project's numbers for one setting, from the original's converted weights."""
  c = config_lib.base()
  c.learner = config_lib.model_config(family)
  c.task.encoder = config_lib.model_config(family)
  c.task.num_tasks = H_DIM
  c.inner.num_steps = nsteps
  c.inner.batch_size = c.inner.heldout_batch_size = batch
  config_lib.validate(c)
  jdtype = jnp.dtype(dtype)
  shape = (32, 32, 3)
  encoder = models.make_encoder(c.task.encoder, input_shape=shape, embedding_dim=H_DIM,
                                dtype=jdtype)
  learner = models.make_model(c.learner, input_shape=shape, num_outputs=2, dtype=jdtype)
  cast = lambda tree: jax.tree.map(lambda a: jnp.asarray(a, jdtype), tree)

  enc = cast(weights.torch_to_flax(section(peer, "enc/"), family, "encoder"))
  init = [cast(weights.torch_to_flax(section(peer, f"learner{i}/"), family, "learner"))
          for i in range(2)]
  learner_vars = stack_learners(init)
  directions_all = jnp.asarray(weights.directions_from_original(peer["linear_tasks"]),
                               jdtype)
  directions = directions_all[task:task + 1]
  nhwc = lambda x: jnp.asarray(np.asarray(x).transpose(0, 2, 3, 1), jdtype)
  images = jnp.concatenate([nhwc(x_train[:nsteps].reshape(-1, 3, 32, 32)), nhwc(x_val)])
  batch_idx = jnp.arange(nsteps * batch, dtype=jnp.int32).reshape(nsteps, batch)
  heldout_x = images[nsteps * batch:]
  theta, stats = enc["params"], enc["batch_stats"]

  # Meta-loss and meta-gradients: one forward, two reverse sweeps.
  meta_loss = meta.make_meta_loss(encoder, learner, c)
  args = estimators.UnrollInputs(
      learner_vars=learner_vars, directions=directions, directions_all=directions_all,
      images=images, batch_idx=batch_idx, heldout_x=heldout_x, window=jnp.int32(0))

  @jax.jit  # every array an argument: XLA would constant-fold captured ones for minutes
  def loss_and_grads(theta, stats, args):
    def terms(theta):
      loss, aux = meta_loss(theta, stats, args)
      metrics = aux.metrics
      return (metrics["as_loss"][0], metrics["diversity"]), loss
    (as_loss, diversity), vjp, loss = jax.vjp(terms, theta, has_aux=True)
    one, zero = jnp.ones((), jdtype), jnp.zeros((), jdtype)
    g_as, = vjp((one, zero))
    g_div, = vjp((zero, one))
    g = jax.tree.map(lambda a, b: a + c.task.diversity_coef * b, g_as, g_div)
    return dict(as_loss=as_loss, diversity=diversity, loss=loss, grad=g, grad_as=g_as)

  t0 = time.perf_counter()
  res = jax.device_get(loss_and_grads(theta, stats, args))

  # Inner trajectory: the learners' SGD steps on the encoder's soft labels, step by step.
  optimizer = optimizers.make_optimizer(c.inner.optimizer, learning_rate=c.inner.learning_rate,
                                        momentum=c.inner.momentum, eps_root=c.inner.eps_root)
  flat = jax.tree.map(lambda a: a[0], learner_vars)  # [K = 2, ...]
  unroll = lambda images, heldout_x: inner_loop.weight_space(
      learner, optimizer, flat["params"], flat["batch_stats"], images, heldout_x, num_tasks=1,
      num_learners=2, data_mode="meta")

  @jax.jit
  def inner_step(carry, t, enc, directions, images, batch_idx, heldout_x):
    idx = batch_idx[t]
    h, _ = encoder.apply(enc, images[idx], True)
    probs = jax.nn.softmax(task_network.task_logits(h, directions, c.task.temperature), -1)
    probs = probs.reshape(2, batch // 2, 2)  # learner l: its half of the batch
    return unroll(images, heldout_x).step(carry, (t, idx, probs))[0]

  carry, trajectory = unroll(images, heldout_x).carry, []
  for t in range(nsteps):
    carry = inner_step(carry, t, enc, directions, images, batch_idx, heldout_x)
    trajectory.append(jax.device_get(carry[0]))
  seconds = time.perf_counter() - t0
  return res, trajectory, init, seconds


def project_quantities(family, res, trajectory) -> dict:
  """This project's numbers as `{quantity: {name: array}}`, arrays named as the original's."""
  out = {}
  for t, params in enumerate(trajectory, 1):
    out[f"learner params step {t}"] = {
        f"models.{i}.{k}": v for i in range(2)
        for k, v in weights.flax_to_torch(
            {"params": jax.tree.map(lambda a: np.asarray(a[i]), params)}, family,
            "learner").items()}
  out["agreement term"] = {"": res["as_loss"]}
  out["uniformity term"] = {"": res["diversity"]}
  out["meta-loss J"] = {"": res["loss"]}
  for key, name in (("grad", "meta-grad J"), ("grad_as", "meta-grad agreement")):
    grads = weights.flax_to_torch({"params": res[key]}, family, "encoder")
    grads.pop("projector.1.bias")  # frozen in the original: no gradient
    out[name] = grads
  return out


def peer_quantities(peer: dict, nsteps: int) -> dict:
  """The original's numbers, as `project_quantities`."""
  out = {f"learner params step {t}": section(peer, f"step{t}/") for t in range(1, nsteps + 1)}
  out["agreement term"] = {"": peer["ag_loss"]}
  out["uniformity term"] = {"": peer["uniformity_loss"]}
  out["meta-loss J"] = {"": peer["loss"]}
  out["meta-grad J"] = section(peer, "grad/")
  out["meta-grad agreement"] = section(peer, "grad_as/")
  return out


def with_updates(quantities: dict, peer: dict) -> dict:
  """Adds `learner update step t`: parameters after step t minus the initial ones."""
  init = {f"models.{i}.{k}": np.asarray(v, np.float64) for i in range(2)
          for k, v in section(peer, f"learner{i}/").items()}
  out = {}
  for name, arrays in quantities.items():
    out[name] = arrays
    if name.startswith("learner params"):
      out[name.replace("params", "update")] = {
          k: np.asarray(v, np.float64) - init[k] for k, v in arrays.items()}
  return out


def compare(family, dtype, nsteps, batch, peer, x_train, x_val, task):
  """Rows of the table for one setting. For float32 also the float32 error of each side:
  its distance to this project's float64 run on the same (float32) weights and data."""
  runs = {}
  for run_dtype in ([dtype] + (["float64"] if dtype == "float32" else [])):
    with jax.enable_x64(run_dtype == "float64"):  # float32 runs as the project runs: x64 off
      res, trajectory, _, seconds = project_side(family, run_dtype, nsteps, batch, peer,
                                                 x_train, x_val, task)
    runs[run_dtype] = with_updates(project_quantities(family, res, trajectory), peer)
    print(f"[parity] {family} T={nsteps} {dtype} (project in {run_dtype}): {seconds:.1f} s, "
          f"J ours {float(res['loss']):.8g} original {float(peer['loss']):.8g}",
          file=sys.stderr, flush=True)
  ours = runs[dtype]
  theirs = with_updates(peer_quantities(peer, nsteps), peer)
  exact = runs.get("float64") if dtype == "float32" else None
  rows = []
  for name in ours:
    value, array = tree_rel(ours[name], theirs[name], where=True)
    row = dict(quantity=name, family=family, T=nsteps, dtype=dtype, max_rel=value,
               array=array)  # the array of the largest difference (in the JSON only)
    if exact is not None:
      row["original_vs_f64"] = tree_rel(theirs[name], exact[name])
      row["ours_vs_f64"] = tree_rel(ours[name], exact[name])
    rows.append(row)
  return rows


def main(argv=None):
  args = parse_args(argv)
  families = args.families.split(",")
  steps = [int(s) for s in args.steps.split(",")]
  dtypes = args.dtypes.split(",")
  rng = np.random.default_rng(args.data_seed)
  rows = []
  with tempfile.TemporaryDirectory() as workdir:
    for family in families:
      batch = getattr(args, f"batch_{family}")
      x_train = rng.standard_normal((max(steps), batch, 3, 32, 32)).astype(np.float32)
      x_val = rng.standard_normal((batch, 3, 32, 32)).astype(np.float32)
      for dtype in dtypes:
        settings = dict(family=family, nsteps=steps, batch=batch, h_dim=H_DIM, task=args.task,
                        seed=args.seed, dtype=dtype, threads=args.threads)
        t0 = time.perf_counter()
        flat = run_oracle(settings, x_train, x_val, workdir)
        print(f"[parity] {family} {dtype}: original side {time.perf_counter() - t0:.1f} s",
              file=sys.stderr, flush=True)
        for nsteps in steps:
          rows += compare(family, dtype, nsteps, batch, section(flat, f"T{nsteps}/"),
                          x_train, x_val, args.task)
  print(f"{'quantity':<26} {'family':<9} {'T':>2} {'dtype':<8} {'max_rel':>8} "
        f"{'orig_f32_err':>12} {'ours_f32_err':>12}")
  for r in rows:
    err = lambda k: f"{r[k]:.2e}" if k in r else "-"
    print(f"{r['quantity']:<26} {r['family']:<9} {r['T']:>2} {r['dtype']:<8} "
          f"{r['max_rel']:.2e} {err('original_vs_f64'):>12} {err('ours_vs_f64'):>12}")
  if args.out:
    with open(args.out, "w") as f:
      json.dump(rows, f, indent=1)
  print(f"max_rel={max(r['max_rel'] for r in rows):.2e}")


if __name__ == "__main__":
  main()
