r"""Cross-architecture AS: tasks discovered with one architecture, evaluated with another.

Commands (from the repository root):
  python -m experiments.cross_architecture --config=configs/digits.py --out=runs/exp_xarch \
      --scale=cpu
  # tasks of existing discovery runs (made with the same data config) instead of new ones:
  python -m experiments.cross_architecture --config=configs/digits.py --out=runs/exp_xarch \
      --source=mlp=runs/digits --eval_archs=mlp,cnn,vit
  # the paper's architectures at their original sizes, on a GPU:
  python -m experiments.cross_architecture --config=configs/cifar.py --out=runs/exp_xarch_cifar \
      --scale=gpu

What it does:
  1. sources: the `tasks.npz` of each --source=LABEL=WORKDIR; without --source, one
     `job='discover'` run per source architecture (learners and encoder of that architecture) in
     OUT/discover_ARCH, labelled ARCH;
  2. for every evaluation architecture A and source S, `job='agreement'` with learner A and
     eval.labels_file=S/tasks.npz in OUT/eval_A/S (the tasks are the report's 'file' family);
     eval.num_human_tasks / num_random_tasks are 0 except in A's first job, which also gives
     A's human- and random-labelled baselines;
  3. writes
       OUT/cross_architecture.md    rows: source (and the human / random baselines), columns:
                                    evaluation architecture, cells: mean AS
       OUT/cross_architecture.json  `mean_as[source][arch]`, `baselines[family][arch]`, workdirs
       OUT/cross_architecture.png   grouped bars: one group per evaluation architecture
A rerun skips finished jobs. Architectures and their sizes per --scale (--source_archs /
--eval_archs replace the lists; `--set learner.FIELD=...` changes every learner):
  smoke: sources mlp; evaluated with mlp, cnn (small widths below; seconds, for tests)
  cpu:   sources mlp; evaluated with mlp, cnn, resnet18, vit, all small:
         mlp (128, 64), cnn (16, 32, 64), resnet18 width 8, vit dim 32 / depth 2 / 2 heads of 16
  gpu:   sources and evaluation resnet18, mlp, vit at the original sizes
         (docs/method.md#network-families)
At smoke and cpu the baselines are 16 human- and 4 random-labelled tasks per architecture
(2 and 2 at smoke); at gpu those of the config. The source discovery runs evaluate only their
own discovered tasks.

Expected (qualitatively): random-labelled tasks lowest with every architecture; the diagonal
(discovery and evaluation with the same architecture) is what discovery optimised, and the
off-diagonal cells show how far the tasks' AS carries over to other learners. The discovery
hyperparameters of the config (e.g. inner.learning_rate) are tuned for its own learner and are
used unchanged for the other architectures; evaluation uses the config's `eval` protocol for all.
Measured with the first command (configs/digits.py: d = 4, 1,500 meta-steps then; --scale=cpu) on a
2-core CPU machine shared with other jobs: about 22 min wall (MLP discovery 3 min, then the
agreement jobs: mlp 0.5, cnn 4.5, resnet18 11.5, vit 2 min). Mean AS:
  tasks \ evaluated with   mlp     cnn     resnet18   vit
  discovered with mlp      0.989   0.992   0.958      0.965
  human (16 tasks)         0.990   0.989   0.939      0.964
  random (4 tasks)         0.686   0.721   0.533      0.625
On this easy dataset the MLP-discovered tasks are as agreeable as the human splits for every
architecture. --source_archs=mlp,cnn adds a CNN discovery run: about 3 min per 100 meta-steps on
the same machine, i.e. over 40 min for digits' 1,500.
"""

from __future__ import annotations

import os
import re
import sys
from typing import Sequence

from experiments import common
from task_discovery.run import workdir as workdir_lib

NAME = "cross_architecture"
ARCHS = ("mlp", "cnn", "resnet18", "vit")
SMALL = {
    "mlp": {"mlp_widths": (128, 64)},
    "cnn": {"cnn_widths": (16, 32, 64)},
    "resnet18": {"resnet_width": 8},
    "vit": {"vit_patch_size": 4, "vit_dim": 32, "vit_depth": 2, "vit_num_heads": 2,
            "vit_head_dim": 16, "vit_mlp_dim": 64},
}
# scale: (source architectures, evaluation architectures, sizes, baseline overrides)
SCALES = {
    "smoke": (("mlp",), ("mlp", "cnn"), SMALL, {}),
    "cpu": (("mlp",), ARCHS, SMALL,
            {"eval.num_human_tasks": 16, "eval.num_random_tasks": 4}),
    "gpu": (("resnet18", "mlp", "vit"), ("resnet18", "mlp", "vit"), {}, {}),
}
NO_BASELINES = {"eval.num_human_tasks": 0, "eval.num_random_tasks": 0}


def arch_config(name: str, sizes: dict):
  """The model config of architecture `name` with the scale's sizes."""
  from task_discovery import config as config_lib
  if name not in ARCHS:
    raise ValueError(f"unknown architecture {name!r}; choose from {ARCHS}")
  model = config_lib.model_config(name)
  for field, value in sizes.get(name, {}).items():
    model[field] = value
  return model


def with_arch(config, name: str, sizes: dict, overrides: Sequence[str], *,
              encoder: bool = False):
  """A copy of `config` whose learner (and encoder) is `name`; `--set` overrides still win."""
  new = common.copy_config(config)
  new.learner = arch_config(name, sizes)
  if encoder:
    new.task.encoder = arch_config(name, sizes)
  return common.apply_overrides(new, overrides)


def parse_source(text: str) -> tuple[str, str]:
  label, sep, workdir = text.partition("=")
  if not sep:
    label, workdir = os.path.basename(os.path.normpath(text)), text
  if not re.fullmatch(r"[A-Za-z0-9_.-]+", label):
    raise ValueError(f"--source label {label!r}: use letters, digits, '_', '-' or '.'")
  return label, workdir


def seed_figures(per_seed: dict, agg: dict, out: str) -> dict:
  """Mean AS per evaluation architecture over seeds, each bar with its 95% interval."""
  from task_discovery.run import plots
  first = next(iter(per_seed.values()))
  eval_archs = first["eval_archs"]
  keys = {f"discovered with {label}": f"mean_as.{label}" for label in first["mean_as"]}
  keys.update({family: f"baselines.{family}" for family, v in first["baselines"].items() if v})
  series, intervals = {}, {}
  for name, prefix in keys.items():
    spreads = [common.spread_of(agg, f"{prefix}.{a}") for a in eval_archs]
    series[name] = [m for m, _ in spreads]
    intervals[name] = [ci for _, ci in spreads]
  path = os.path.join(out, NAME + "_over_seeds.png")
  plots.grouped_bars(list(eval_archs), series, path, ylabel="mean AS over seeds",
                     title=f"mean AS over seeds {', '.join(map(str, per_seed))} "
                           "(bars: 95% interval)", intervals=intervals)
  return {"over_seeds": path}


def main(argv: Sequence[str] | None = None) -> dict:
  parser = common.make_parser(__doc__)
  parser.add_argument("--source", dest="sources", action="append", default=[],
                      metavar="LABEL=WORKDIR",
                      help="a discovery workdir whose tasks.npz to evaluate (repeatable); "
                           "default: discover with each of --source_archs")
  parser.add_argument("--source_archs", type=common.comma_list(str), default=None,
                      help=f"architectures to discover with, from {ARCHS}")
  parser.add_argument("--eval_archs", type=common.comma_list(str), default=None,
                      help=f"architectures to evaluate with, from {ARCHS}")
  args = parser.parse_args(argv)
  if args.seeds:
    return common.run_over_seeds(main, sys.argv[1:] if argv is None else argv, args.out,
                                 args.seeds, NAME, figure_fn=seed_figures)
  common.setup_logging()
  source_archs, eval_archs, sizes, baselines = SCALES[args.scale]
  source_archs, eval_archs = args.source_archs or source_archs, args.eval_archs or eval_archs
  config = common.load_config(args.config, args.scale)
  common.apply_overrides(config, baselines)
  common.apply_overrides(config, args.overrides)
  num_human, num_random = config.eval.num_human_tasks, config.eval.num_random_tasks

  sources = dict(parse_source(s) for s in args.sources)
  if len(sources) != len(args.sources):
    raise ValueError(f"--source labels must be distinct, got {args.sources}")
  for label, workdir in sources.items():
    common.check_same_data(config, workdir)
    if not os.path.exists(workdir_lib.Workdir(workdir).tasks):
      raise FileNotFoundError(f"{workdir}/tasks.npz does not exist: --source must name a "
                              "finished discovery workdir")
  if not sources:
    for arch in source_archs:
      discover = with_arch(common.copy_config(config, dict(NO_BASELINES, job="discover")), arch,
                           sizes, args.overrides, encoder=True)
      sources[arch] = os.path.join(args.out, f"discover_{arch}")
      common.run_job(discover, sources[arch])

  mean_as = {label: {} for label in sources}
  base = {"human": {}, "random": {}}
  jobs = {label: {} for label in sources}
  for arch in eval_archs:
    for i, (label, source) in enumerate(sources.items()):
      counts = ({"eval.num_human_tasks": num_human, "eval.num_random_tasks": num_random}
                if i == 0 else NO_BASELINES)
      job = with_arch(common.copy_config(config, dict(
          counts, job="agreement", **{"eval.labels_file": os.path.abspath(
              workdir_lib.Workdir(source).tasks)})), arch, sizes, args.overrides)
      # --set eval.num_*_tasks applies to the baselines only.
      common.apply_overrides(job, counts)
      expected = {"file"} | {f for f, n in (("human", job.eval.num_human_tasks),
                                            ("random", job.eval.num_random_tasks)) if n}
      workdir = os.path.join(args.out, f"eval_{arch}", label)
      report = common.run_job(job, workdir,
                              done=lambda r, e=expected: e <= set(r.get("summary", {})))
      summary = report["summary"]
      mean_as[label][arch] = summary["file"]["mean_as"]
      jobs[label][arch] = os.path.abspath(workdir)
      for family in base:
        if family in summary:
          base[family][arch] = summary[family]["mean_as"]

  rows = [[f"discovered with {label}"] + [mean_as[label][a] for a in eval_archs]
          for label in sources]
  rows += [[f"{family} (baseline)"] + [base[family].get(a) for a in eval_archs]
           for family in base if base[family]]
  table = common.markdown_table(["tasks \\ evaluated with"] + list(eval_archs), rows)
  from task_discovery.run import plots
  figure = os.path.join(args.out, NAME + ".png")
  series = {f"discovered with {label}": [mean_as[label][a] for a in eval_archs]
            for label in sources}
  series.update({family: [base[family].get(a, float("nan")) for a in eval_archs]
                 for family in base if base[family]})
  plots.grouped_bars(list(eval_archs), series, figure, ylabel="mean AS",
                     title=f"{config.data.name}: mean AS by evaluation architecture")
  summary = {"sources": {k: os.path.abspath(v) for k, v in sources.items()},
             "eval_archs": list(eval_archs), "mean_as": mean_as, "baselines": base,
             "jobs": jobs, "scale": args.scale, "config": args.config,
             "overrides": list(args.overrides), "outputs": {"figure": figure}}
  return common.write_outputs(args.out, NAME, summary, table)


if __name__ == "__main__":
  main(sys.argv[1:])
