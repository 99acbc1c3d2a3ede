"""Checkpoints of the original's own training, imported: the labels of `task_discovery.load`
against the original's, for every family and both BatchNorm modes.

    PEER_REPO=<TaskDiscovery checkout> PEER_PY=<python with torch> \
        python benchmarks/peer_import_check.py [--families=mlp,resnet18,vit] [--h_dim=32]

Runs from this project's environment (with torch: `pip install -e '.[original]'`). The original's
side runs in `PEER_PY` (`peer_checkpoint.py`, beside this file): for each family it builds its
`ASUniformityTraining` (that encoder, MLP learners), trains it for a few meta-steps with
pytorch_lightning's `Trainer.fit` (so BatchNorm's running statistics move away from their
initial values), saves the checkpoint with `Trainer.save_checkpoint` and scores random images
in [0, 1], normalised as its CIFAR-10 data module does, two ways:
  * `batch`: after `model.eval()`, as the original labels every image: its encoder's `train()`
    override keeps BatchNorm in training mode, so each batch (512 consecutive images, its
    evaluation's batch size; the last batch partial) is normalised with its own statistics;
  * `running`: with every encoder module in eval mode (BatchNorm's running statistics), a mode
    the original never labels in.
Here each checkpoint is imported (`python -m task_discovery.import_original`) in both
polarities and both `--batch_norm` modes, and `task_discovery.load(DIR)` scores the same images
in the mode the workdir records.

Per family, polarity and mode: `mismatches`, the images x tasks whose label differs from the
original's in the same mode (polarity 'training': ours 1 iff the original's class 1, i.e.
`<w_j, h> < 0`; 'csv': ours 1 iff `<w_j, h> > 0`), `max_abs_diff` of the scores (`<w, h>` here,
the original's `<w_j, h>` with its sign for the polarity) and `modes_differ`, the labels in
which the original's two modes disagree (how far the labelling choice matters). The last line:
`max_mismatches=<over families, polarities, modes> max_abs_diff=<...>`.
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
from task_discovery.models import task_network
from task_discovery.original import importer

HERE = os.path.dirname(os.path.abspath(__file__))


def main():
  parser = argparse.ArgumentParser(description=__doc__,
                                   formatter_class=argparse.RawDescriptionHelpFormatter)
  parser.add_argument("--families", default="mlp,resnet18,vit")
  parser.add_argument("--h_dim", type=int, default=32)
  parser.add_argument("--num_images", type=int, default=1100,
                      help="images to label: two full batches of 512 and a partial one")
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
                  batch=batch, label_batch=task_network.ORIGINAL_BATCH_SIZE)
  rows, worst, worst_diff = [], 0, 0.0
  with tempfile.TemporaryDirectory() as tmp:
    np.savez(os.path.join(tmp, "in.npz"), settings=json.dumps(settings), images=images,
             train=train)
    subprocess.run([peer_py, os.path.join(HERE, "peer_checkpoint.py"),
                    os.path.join(tmp, "in.npz"), tmp], check=True,
                   env=dict(os.environ, PEER_REPO=peer_repo))
    for family in families:
      original = np.load(os.path.join(tmp, f"scores_{family}.npz"))
      modes_differ = int(((original["batch_mode"] > 0) != (original["eval_mode"] > 0)).sum())
      for polarity, sign in (("training", -1.0), ("csv", 1.0)):
        for mode, key in (("batch", "batch_mode"), ("running", "eval_mode")):
          workdir = os.path.join(tmp, f"{family}_{polarity}_{mode}")
          importer.import_checkpoint(os.path.join(tmp, f"checkpoint_{family}.ckpt"), workdir,
                                     polarity=polarity, batch_norm=mode)
          ours = task_discovery.load(workdir).scores(images)
          theirs = sign * original[key]
          mismatches = int(((ours > 0) != (theirs > 0)).sum())
          diff = float(np.abs(ours - theirs).max())
          rows.append((family, polarity, mode, mismatches, modes_differ, diff,
                       float(np.abs(theirs).max())))
          worst, worst_diff = max(worst, mismatches), max(worst_diff, diff)
  n = images.shape[0] * args.h_dim
  print(f"{'family':<9} {'polarity':<9} {'mode':<8} {'mismatches':>10} {'modes_differ':>12} "
        f"{'max_abs_diff':>12} {'max_abs_score':>13}   (of {n} labels, d = {args.h_dim})")
  for family, polarity, mode, m, md, diff, scale in rows:
    print(f"{family:<9} {polarity:<9} {mode:<8} {m:>10} {md:>12} {diff:>12.2e} {scale:>13.3f}")
  print(f"max_mismatches={worst} max_abs_diff={worst_diff:.2e}")


if __name__ == "__main__":
  main()
