"""Checkpoints of the original's own training, imported: the labels of `task_discovery.load`
against the original's `<w_j, h(x)> > 0`, for every family.

    PEER_REPO=<TaskDiscovery checkout> PEER_PY=<python with torch> \
        python benchmarks/peer_import_check.py [--families=mlp,resnet18,vit] [--h_dim=32]

Runs from this project's environment (with torch: `pip install -e '.[original]'`). The original's
side runs in `PEER_PY` (`peer_checkpoint.py`, beside this file): for each family it builds its
`ASUniformityTraining` (that encoder, MLP learners), trains it for a few meta-steps with
pytorch_lightning's `Trainer.fit` (so BatchNorm's running statistics move away from their
initial values), saves the checkpoint with `Trainer.save_checkpoint` and scores random images
in [0, 1] with every encoder module in eval mode, normalised as its CIFAR-10 data module does.
Here each checkpoint is imported (`python -m task_discovery.import_original`, both polarities)
and `task_discovery.load(DIR)` scores the same images.

Per family and polarity: `mismatches`, the images x tasks whose label differs from the
original's (polarity 'training': ours 1 iff the original's class 1, i.e. `<w_j, h> < 0`;
'csv': ours 1 iff `<w_j, h> > 0`), and `max_abs_diff` of the scores (`<w, h>` here, the
original's `<w_j, h>` with its sign for the polarity). The original's notebooks label with
`model.eval()`, which leaves its encoder's BatchNorm in training mode: `notebook_mismatches`
counts the labels that differ from those (batch statistics of all the images at once). The last
line: `max_mismatches=<over families and polarities> max_abs_diff=<...>`.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile

import numpy as np

import task_discovery
from task_discovery.original import importer

HERE = os.path.dirname(os.path.abspath(__file__))


def main():
  parser = argparse.ArgumentParser(description=__doc__,
                                   formatter_class=argparse.RawDescriptionHelpFormatter)
  parser.add_argument("--families", default="mlp,resnet18,vit")
  parser.add_argument("--h_dim", type=int, default=32)
  parser.add_argument("--num_images", type=int, default=256)
  parser.add_argument("--steps", type=int, default=3, help="meta-steps the original trains")
  args = parser.parse_args()
  peer_py, peer_repo = os.environ.get("PEER_PY"), os.environ.get("PEER_REPO")
  if not peer_py or not peer_repo:
    sys.exit("set PEER_PY (a Python with torch and pytorch-lightning) and PEER_REPO (the "
             "original's checkout): benchmarks/README.md, 'Setting up the original'")
  families = args.families.split(",")
  rng = np.random.default_rng(0)
  images = rng.uniform(size=(args.num_images, 32, 32, 3)).astype(np.float32)
  batch, nsteps = 32, 2
  train = rng.standard_normal((nsteps, batch, 3, 32, 32)).astype(np.float32)
  settings = dict(families=families, h_dim=args.h_dim, steps=args.steps, seed=0, nsteps=nsteps,
                  batch=batch)
  rows, worst, worst_diff = [], 0, 0.0
  with tempfile.TemporaryDirectory() as tmp:
    np.savez(os.path.join(tmp, "in.npz"), settings=json.dumps(settings), images=images,
             train=train)
    subprocess.run([peer_py, os.path.join(HERE, "peer_checkpoint.py"),
                    os.path.join(tmp, "in.npz"), tmp], check=True,
                   env=dict(os.environ, PEER_REPO=peer_repo))
    for family in families:
      original = np.load(os.path.join(tmp, f"scores_{family}.npz"))
      for polarity, sign in (("training", -1.0), ("csv", 1.0)):
        workdir = os.path.join(tmp, f"{family}_{polarity}")
        importer.import_checkpoint(os.path.join(tmp, f"checkpoint_{family}.ckpt"),
                                          workdir, polarity=polarity)
        ours = task_discovery.load(workdir).scores(images)
        theirs = sign * original["eval_mode"]
        mismatches = int(((ours > 0) != (theirs > 0)).sum())
        notebook = int(((ours > 0) != (sign * original["notebook"] > 0)).sum())
        diff = float(np.abs(ours - theirs).max())
        rows.append((family, polarity, mismatches, notebook, diff,
                     float(np.abs(theirs).max())))
        worst, worst_diff = max(worst, mismatches), max(worst_diff, diff)
  n = images.shape[0] * args.h_dim
  print(f"{'family':<9} {'polarity':<9} {'mismatches':>10} {'notebook_mismatches':>19} "
        f"{'max_abs_diff':>12} {'max_abs_score':>13}   (of {n} labels, d = {args.h_dim})")
  for family, polarity, m, nb, diff, scale in rows:
    print(f"{family:<9} {polarity:<9} {m:>10} {nb:>19} {diff:>12.2e} {scale:>13.3f}")
  print(f"max_mismatches={worst} max_abs_diff={worst_diff:.2e}")


if __name__ == "__main__":
  main()
