"""Command line: `python -m task_discovery.import_original --checkpoint=FILE.ckpt --workdir=DIR`.

Turns a checkpoint of the original PyTorch code's task discovery (`checkpoint_*.ckpt`, MLP,
ResNet-18 or ViT encoder, any d) into a workdir that this library uses as it uses a discovery
run's: `task_discovery.load(DIR)` gives its task network, `job=agreement` evaluates its tasks
with `--config.eval.discovery_workdir=DIR`, and `job=adversarial_split` builds splits from them
with `--config.adversarial.discovery_workdir=DIR`. The task directions are the checkpoint's
own; `--polarity` says which class is which (docs/original.md#polarity). Needs torch:
`pip install -e '.[original]'`.
"""

from __future__ import annotations

import argparse
import sys

from absl import logging

from task_discovery.models import task_network
from task_discovery.original import checkpoint as original
from task_discovery.original import importer
from task_discovery.original import weights


def parse_args(argv: list[str]) -> argparse.Namespace:
  # argparse, not absl flags: importing this module defines nothing global, so it can share a
  # process with `task_discovery.main` (whose --workdir it would otherwise redefine).
  parser = argparse.ArgumentParser(prog="python -m task_discovery.import_original",
                                   description=__doc__.split("\n\n")[1],
                                   formatter_class=argparse.RawDescriptionHelpFormatter)
  parser.add_argument("--checkpoint", required=True, help="the original's checkpoint_*.ckpt")
  parser.add_argument("--workdir", required=True,
                      help="new workdir to write (must hold no checkpoint)")
  parser.add_argument("--polarity", default="training", choices=weights.POLARITIES,
                      help="'training' (default): class 1 is the class the original trained as "
                      "class 1 (<w_j, h> < 0); 'csv': class 1 iff <w_j, h> > 0, as the "
                      "original's discovered.csv and notebooks")
  parser.add_argument("--batch_norm", default="batch", choices=task_network.BATCH_NORM_MODES,
                      help="how the tasks label images: 'batch' (default), BatchNorm on the "
                      "statistics of each batch of 512 images, as the original labels every "
                      "image; 'running', true eval mode (docs/original.md#batchnorm)")
  parser.add_argument("--name", default=None,
                      help="the tasks are named NAME-0, NAME-1, ... as in the original's "
                      "discovered.csv and agreement_table.csv; default: the encoder family, "
                      "with _d<d> unless d = 32 (resnet18, mlp, vit, resnet18_d8)")
  return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
  args = parse_args(sys.argv[1:] if argv is None else argv)
  logging.set_verbosity(logging.WARNING)  # orbax logs every internal step at INFO
  try:
    info = importer.import_checkpoint(args.checkpoint, args.workdir, polarity=args.polarity,
                                      name=args.name, batch_norm=args.batch_norm)
  except (original.OriginalCheckpointError, FileExistsError, FileNotFoundError,
          ImportError) as e:
    print(f"error: {e}", file=sys.stderr)
    return 1
  print(f"imported {info['family']} task network, d = {info['num_tasks']} (tasks "
        f"{info['name']}-0..{info['num_tasks'] - 1}), meta-step {info['global_step']}, polarity "
        f"'{info['polarity']}', BatchNorm on {info['batch_norm']} statistics, into {args.workdir}\n"
        f"in Python: task_discovery.load({args.workdir!r})(images)  # images [N, H, W, C] in "
        "[0, 1]\n"
        f"evaluate: python -m task_discovery.main --config=configs/cifar.py --workdir=RUN "
        f"--config.job=agreement --config.eval.discovery_workdir={args.workdir}", flush=True)
  return 0


if __name__ == "__main__":
  sys.exit(main())
