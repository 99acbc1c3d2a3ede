r"""Gradient estimators compared: memory and time against T, bias and variance against pairs.

Commands (repository root, 2 CPU cores):
  python -m experiments.estimators --config=configs/digits.py --out=runs/exp_estimators \
      --scale=cpu --part=memory --steps=50,200,1000
  python -m experiments.estimators --config=configs/digits.py --out=runs/exp_estimators \
      --scale=cpu --part=bias --seeds_list=0,1,2
  (and the same with --config=configs/fashion_mnist.py)

Parts:
  memory: for each T in --steps and each estimator, XLA's memory plan of the compiled
    meta-step (temp + argument + output - alias bytes, as benchmarks/meta_step.py) and the
    median wall time of --timed_steps meta-steps after the first. The encoder runs per step
    (`inner.encoder_mode='per_step'`) so that only the estimators differ in what they keep.
  bias: at the first meta-step's inputs of each seed (task network, learners, data drawn from
    `config.seed = s`), the cosine similarity of each estimator's gradient to the exact one:
    `truncated` (deterministic) and `es` (per number of pairs in --pairs, over --draws keys)
    against `full`; `pes`, summed over the W windows of one unroll with theta fixed, against
    the exact gradient of the objective it estimates (the summed truncation losses).

Discovery with long unrolls (T = 20 full, T = 200 and 1000 pes, AS of the discovered tasks
under the evaluation protocol) is the ordinary `discover` job with overrides, e.g.
  python -m task_discovery.main --config=configs/digits.py --workdir=runs/pes_T200 \
      --seeds=0,1,2 --config.inner.num_steps=200 --config.meta.estimator=pes \
      --config.meta.truncation_length=20
(see docs/estimators.md for what was run).
"""

from __future__ import annotations

import json
import os
import time
from typing import Sequence

import jax
import jax.numpy as jnp
import numpy as np

from experiments import common
from task_discovery import keys
from task_discovery import models
from task_discovery.data import datasets
from task_discovery.jobs import discovery
from task_discovery.method import estimators
from task_discovery.method import meta


def _config(base, **fields):
  c = base.copy_and_resolve_references()
  for dotted, value in fields.items():
    section, name = dotted.split("__")
    c[section][name] = value
  return c


def memory_and_time(base, steps: Sequence[int], window: int, timed_steps: int) -> list[dict]:
  dataset = datasets.load_dataset(base.data)
  data = discovery.device_data(dataset)
  rows = []
  for num_steps in steps:
    for name in estimators.ESTIMATORS:
      c = _config(base, inner__num_steps=num_steps, inner__encoder_mode="per_step",
                  meta__estimator=name, meta__truncation_length=window)
      encoder, learner = models.build_models(c, dataset.input_shape)
      meta_step = meta.make_meta_step(encoder, learner, c)
      state = meta_step.init(jax.random.key(0))
      step = jax.jit(meta_step.update, donate_argnums=0)
      t0 = time.perf_counter()
      compiled = step.lower(state, data).compile()
      compile_s = time.perf_counter() - t0
      mem = compiled.memory_analysis()
      peak = (mem.temp_size_in_bytes + mem.argument_size_in_bytes + mem.output_size_in_bytes
              - mem.alias_size_in_bytes)
      state, metrics = compiled(state, data)  # the first execution is not timed
      jax.block_until_ready(metrics)
      times = []
      for _ in range(timed_steps):
        t0 = time.perf_counter()
        state, metrics = compiled(state, data)
        jax.block_until_ready(metrics)
        times.append(time.perf_counter() - t0)
      row = dict(T=num_steps, estimator=name, xla_peak_mib=peak / 2**20,
                 xla_temp_mib=mem.temp_size_in_bytes / 2**20,
                 seconds_per_meta_step=float(np.median(times)), compile_seconds=compile_s)
      print(json.dumps(row), flush=True)
      rows.append(row)
  return rows


def _flat(tree) -> np.ndarray:
  return np.concatenate([np.ravel(np.asarray(a, np.float64)) for a in jax.tree.leaves(tree)])


def _cosine(a, b) -> float:
  return float(a @ b / (np.linalg.norm(a) * np.linalg.norm(b)))


def first_unroll(c, dataset, encoder, learner):
  """The initial state and the first meta-step's unroll inputs for `c.seed`, as the meta-step
  builds them (`meta.MetaStep.unroll_inputs`)."""
  meta_step = meta.make_meta_step(encoder, learner, c)
  state = meta_step.init(keys.root(c.seed))
  inputs, _, _ = meta_step.unroll_inputs(state, discovery.device_data(dataset))
  return state, inputs


def bias_and_variance(base, seeds: Sequence[int], pairs: Sequence[int], draws: int,
                      window: int) -> list[dict]:
  dataset = datasets.load_dataset(base.data)
  rows = []
  for seed in seeds:
    c = _config(base, meta__truncation_length=window)
    c.seed = seed
    encoder, learner = models.build_models(c, dataset.input_shape)
    state, unroll = first_unroll(c, dataset, encoder, learner)
    theta, stats = state.params, state.batch_stats

    def grad_of(name, key, **fields):
      cfg = _config(c, meta__estimator=name, **fields)
      est = meta.make_estimator(encoder, learner, cfg)
      return jax.jit(est.grad)(theta, stats, est.init_state(theta, unroll.learner_vars),
                               unroll, key).grads

    exact = _flat(grad_of("full", None))
    rows.append(dict(seed=seed, estimator="truncated", pairs=0,
                     cosine=_cosine(_flat(grad_of("truncated", None)), exact)))
    # PES's target: the exact gradient of the truncation losses of one unroll, summed.
    cfg = _config(c, meta__estimator="pes")
    window_loss = meta.make_window_loss(encoder, learner, cfg)
    idx = unroll.batch_idx
    num_windows = c.inner.num_steps // window

    def summed(t):
      total, carry = 0.0, None
      for w in range(num_windows):
        loss, aux = window_loss(t, stats,
                                unroll._replace(batch_idx=idx[w * window:(w + 1) * window]),
                                carry, jnp.bool_(w == 0))
        total, carry = total + loss, aux.carry
      return total

    pes_target = _flat(jax.jit(jax.grad(summed))(theta))
    for num_pairs in pairs:
      es_cos, pes_cos = [], []
      es_cfg = _config(c, meta__estimator="es", meta__es_num_pairs=num_pairs)
      es_grad = jax.jit(meta.make_estimator(encoder, learner, es_cfg).grad)
      pes_est = meta.make_estimator(
          encoder, learner, _config(c, meta__estimator="pes", meta__es_num_pairs=num_pairs))
      pes_grad = jax.jit(pes_est.grad)
      for d in range(draws):
        key = jax.random.key(1000 + d)
        es_cos.append(_cosine(_flat(es_grad(theta, stats, {}, unroll, key).grads), exact))
        est_state, total = pes_est.init_state(theta, unroll.learner_vars), 0.0
        for w in range(num_windows):
          g, _, _, est_state = pes_grad(theta, stats, est_state,
                                        unroll._replace(window=jnp.int32(w)),
                                        jax.random.fold_in(key, w))
          total = total + _flat(g)
        pes_cos.append(_cosine(total, pes_target))
      for name, values in (("es", es_cos), ("pes", pes_cos)):
        row = dict(seed=seed, estimator=name, pairs=num_pairs, cosine=float(np.mean(values)),
                   cosine_std_over_draws=float(np.std(values, ddof=1)) if draws > 1 else 0.0)
        print(json.dumps(row), flush=True)
        rows.append(row)
  return rows


def main(argv: Sequence[str] | None = None) -> dict:
  parser = common.make_parser(__doc__)
  parser.add_argument("--part", choices=("memory", "bias"), default="memory")
  parser.add_argument("--steps", type=common.comma_list(int), default=(50, 200, 1000))
  parser.add_argument("--window", type=int, default=10,
                      help="K: truncation_length of 'truncated' and 'pes'")
  parser.add_argument("--timed_steps", type=int, default=2)
  parser.add_argument("--pairs", type=common.comma_list(int), default=(1, 4, 16, 64))
  parser.add_argument("--draws", type=int, default=4, help="ES/PES keys per seed and pairs")
  parser.add_argument("--seeds_list", type=common.comma_list(int), default=(0, 1, 2))
  args = parser.parse_args(argv)
  config = common.load_config(args.config, args.scale)
  config = common.apply_overrides(config, args.overrides)
  os.makedirs(args.out, exist_ok=True)
  if args.part == "memory":
    rows = memory_and_time(config, args.steps, args.window, args.timed_steps)
  else:
    rows = bias_and_variance(config, args.seeds_list, args.pairs, args.draws, args.window)
  result = dict(config=args.config, part=args.part, dataset=config.data.name, rows=rows)
  path = os.path.join(args.out, f"estimators_{args.part}_{config.data.name}.json")
  with open(path, "w") as f:
    json.dump(result, f, indent=1)
  return result


if __name__ == "__main__":
  main()
