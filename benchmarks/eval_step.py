"""Benchmark of the AS evaluation's training step per convolution implementation; prints JSON.

    python benchmarks/eval_step.py                      # small CNN on 28x28x1, ~2 CPU-minutes
    python benchmarks/eval_step.py --model=resnet18 --resnet_width=16 --image_size=32 --channels=3

The evaluation protocol (`method/agreement.py`) trains `tasks x learners` networks at once with
Adam on hard labels: first-order gradients, vmapped over the learners, no unroll. That is a
different workload from the meta-gradient the convolution implementations were chosen for
(second order through `lax.scan`), so `conv_impl='auto'` resolves per workload
(`models.resolve_conv_impl`); this script measures the evaluation side. Each record times one
compiled `agreement.make_train_epoch` epoch over synthetic images after a warm-up epoch and
reports seconds per step (one batch for every learner) and microseconds per learner-image.
Run it alone on the machine: a figure taken beside another job is an upper bound.
"""

from __future__ import annotations

import argparse
import json
import time

import jax
import jax.numpy as jnp

import measure  # the measuring helpers, beside this script
from task_discovery import config as config_lib
from task_discovery import models
from task_discovery.method import agreement
from task_discovery.method import optimizers


def time_epoch(impl: str, args) -> dict:
  cfg = config_lib.model_config(args.model)
  cfg.cnn_widths = tuple(args.cnn_widths)
  cfg.resnet_width = args.resnet_width
  cfg.conv_impl = impl
  shape = (args.image_size, args.image_size, args.channels)
  model = models.make_model(cfg, input_shape=shape, num_outputs=2)
  opt = optimizers.make_optimizer("adam", learning_rate=1e-3)
  epoch = jax.jit(agreement.make_train_epoch(model, opt, batch_size=args.batch_size))
  n = args.batch_size * args.steps
  images = jax.random.normal(jax.random.key(0), (n, *shape))
  labels = jax.random.bernoulli(jax.random.key(1), 0.5, (args.tasks, n)).astype(jnp.int32)
  task_keys = jax.random.split(jax.random.key(2), args.tasks * args.learners)
  state = agreement.init_learners(model, opt, task_keys.reshape(args.tasks, args.learners))
  idx = jnp.arange(n)
  t = time.perf_counter()
  state, loss = epoch(state, images, labels, idx, jax.random.key(3))
  jax.block_until_ready(loss)
  compile_s = time.perf_counter() - t
  times = []
  for e in range(args.repeats):
    t = time.perf_counter()
    state, loss = epoch(state, images, labels, idx, jax.random.key(4 + e))
    jax.block_until_ready(loss)
    times.append((time.perf_counter() - t) / args.steps)
  step_s = sorted(times)[len(times) // 2]
  learner_images = args.tasks * args.learners * args.batch_size
  return {"conv_impl": impl, "seconds_per_step": step_s,
          "us_per_learner_image": step_s / learner_images * 1e6,
          "first_epoch_seconds_incl_compile": compile_s}


def main():
  p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  p.add_argument("--model", default="cnn", choices=("cnn", "resnet18"))
  p.add_argument("--cnn_widths", type=int, nargs="+", default=[16, 32, 64])
  p.add_argument("--resnet_width", type=int, default=16)
  p.add_argument("--image_size", type=int, default=28)
  p.add_argument("--channels", type=int, default=1)
  p.add_argument("--tasks", type=int, default=8, help="tasks trained together (eval.tasks_per_chunk)")
  p.add_argument("--learners", type=int, default=2)
  p.add_argument("--batch_size", type=int, default=256)
  p.add_argument("--steps", type=int, default=8, help="batches per timed epoch")
  p.add_argument("--repeats", type=int, default=3)
  # XLA's own convolution is left out by default: on CPU one epoch of it did not finish in
  # five minutes (jax-ml/jax#12868).
  p.add_argument("--impls", default="canonical,im2col")
  args = p.parse_args()
  records = [time_epoch(impl, args) for impl in args.impls.split(",")]
  fastest = min(r["seconds_per_step"] for r in records)
  for r in records:
    r["relative_to_fastest"] = r["seconds_per_step"] / fastest
  print(json.dumps({"workload": vars(args), "machine": measure.cpu_model(),
                    "backend": jax.default_backend(),
                    "auto_resolves_to": models.resolve_conv_impl("auto", use="train"),
                    "records": records}, indent=1))


if __name__ == "__main__":
  main()
