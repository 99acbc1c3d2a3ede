"""The configuration schema: every field, its default (the original's) and its validation.

Config files under `configs/` start from `base()` and override what their dataset and scale need.
Values derived from several fields (e.g. the number of human tasks of a dataset) are computed in
code where they are used, never here, so a command-line override can not leave them stale.

This module imports nothing of the library: it is the lowest layer, read by all the others
(docs/architecture.md). Comparing a config with a saved one is `run.report.differences`.
"""

from __future__ import annotations

import importlib.util
import json
import os

import ml_collections

JOBS = ("discover", "agreement", "adversarial_split")
ADVERSARIAL_SOURCES = ("discovery", "file", "random_network")
ESTIMATORS = ("full", "truncated", "es", "pes")
PRECISIONS = ("highest", "high", "default")
DIVERSITIES = ("uniformity", "mutual_information", "mutual_information_divdis", "none")


def model_config(name: str = "resnet18") -> ml_collections.ConfigDict:
  """A network description, read by `models.make_model` / `models.make_encoder`."""
  return ml_collections.ConfigDict(dict(
      name=name,                       # 'mlp' | 'cnn' | 'resnet18' | 'vit'
      mlp_widths=(1024, 512, 256, 64),  # MLP hidden widths (original); BN after all but the last
      cnn_widths=(32, 64, 128),        # small CNN stage widths (stride 2 after the first stage)
      resnet_width=64,                 # CIFAR ResNet-18 base width (64 = original, ~11.2M params)
      vit_patch_size=4,                # ViT patch size (must divide the image size)
      vit_dim=256,                     # ViT token width
      vit_depth=6,                     # ViT number of blocks
      vit_num_heads=6,                 # ViT attention heads
      vit_head_dim=64,                 # ViT width per head
      vit_mlp_dim=256,                 # ViT MLP hidden width
      vit_norm="batch",                # 'batch' (original's pre-norm) | 'layer'
      # 'head' (original): a learner normalises the class token in its head, an encoder takes
      # it unnormalised | 'tokens': one norm over all tokens before taking the class token.
      vit_final_norm="head",
      # 'torch' (original): PyTorch's defaults, U(+-1/sqrt(fan_in)) kernels and biases, ViT
      # tokens N(0, 1) | 'flax': Flax's defaults (LeCun-normal kernels, zero biases, N(0, 0.02)).
      init="torch",
      # 'auto' (on CPU: canonical inside the differentiable AS, im2col for the evaluation's
      # learners; XLA conv elsewhere) | 'xla' | 'im2col' | 'canonical'
      conv_impl="auto",
  ))


def base() -> ml_collections.ConfigDict:
  """Every field, with the original's defaults where it has one (CIFAR-10, ResNet-18, d = 32).

  The original's (its `train-as-uniformity.py`, `as-uniformity-default.yaml` and README
  command): ResNet-18 learners and encoder initialised as PyTorch does (`init='torch'`); d = 32
  tasks (README command; the yaml has 128) of temperature 5; uniformity loss with t = 2 and
  coefficient 5 (the yaml; the README command uses 25); T = 50 unrolled SGD steps on batches of
  512, lr 0.01 on `0.5 * (l0 + l1)` (0.005 per learner), the same learner initialisation every
  meta-step, one held-out batch of 512; one task per meta-step, the d tasks reshuffled every
  cycle (`meta.task_order`); encoder trained with Adam 1e-3 for 100,000 meta-steps; the
  meta-validation images disjoint from the images that score the tasks (`data.meta_val_fraction`);
  evaluation with two learners, Adam 1e-3, batch 512, 100 epochs, on the 126 human 5-vs-5 tasks.
  With `task.diversity='mutual_information'`: the original's MI loss and Gaussian directions.

  Where this differs, and why:
    * Data parts: the original trains on 45k, meta-validates on 5k (both from CIFAR-10's
      training split) and scores tasks on the 10k test split; here the three parts come from
      one source split (`data.split`): 80% / 10% / 10%, i.e. 40k / 5k / 5k on CIFAR-10, so that
      every dataset (digits has no test split) works the same way and the 5k held-out part
      matches the original's released AS reference (45k / 5k).
    * `eval.num_random_tasks` = 8 and everything under `mesh`, `distributed`, `checkpoint`,
      `compilation_cache`, `adversarial`: this library's, the original has no counterpart.
    * `precision`: 'highest' keeps the products and convolutions of training and evaluation in
      float32 on any device (PyTorch's default on NVIDIA GPUs lets cuDNN convolutions use TF32).
    * `meta.meta_batch_size`, `meta.estimator`, `inner.optimizer`, `inner.random_init`,
      `inner.num_learners`, `inner.data_mode`: the original's values, other values are options.
    * `inner.remat`, `inner.remat_block`, `inner.learner_updates`, `inner.encoder_mode`,
      `*.conv_impl`: how the same math is computed (memory, speed); results differ by rounding.
    * BatchNorm keeps the biased batch variance as its running variance (PyTorch: unbiased);
      see `models`.
    * `eval.reshuffle` = True draws a new batch order every epoch, as the original's
      `check_as.py`; its `train-2net.py` with `as-eval-default.yaml` (`shuffle: False`) keeps
      one order for all epochs: `eval.reshuffle=False` (benchmarks/peer_eval_parity.py).
  Config files under `configs/` change what their dataset and machine need; each says why.
  """
  c = ml_collections.ConfigDict()
  c.job = "discover"                   # 'discover' | 'agreement' | 'adversarial_split'
  c.seed = 0                           # root seed of every random draw except the data split

  c.data = ml_collections.ConfigDict(dict(
      # 'digits' | 'fashion_mnist' | 'mnist' | 'cifar10' | 'cifar100' | 'celeb_a' |
      # 'tiny_imagenet' | another TFDS image-classification dataset (docs/datasets.md)
      name="cifar10",
      # 'auto' | 'sklearn' | 'idx' | 'tfds' | 'directory' (tiny-imagenet-200/ in data_dir)
      source="auto",
      data_dir="",                     # '' = the source's default location
      split="train",                   # which split of the source to use
      num_images=0,                    # 0 = all, else a seeded subset of this size
      # 0 = images as stored; else each image is centre-cropped to a square and resized to
      # image_size x image_size (bilinear, antialiased) while it is read: TinyImageNet at 32 as
      # the original's `tiny_imagenet`, CelebA's 218x178 faces
      image_size=0,
      heldout_fraction=0.1,            # original: 5k of CIFAR-10's 50k training images
      # Meta-validation part: the held-out images of the differentiable AS during discovery,
      # disjoint from the training part and from the held-out part that the evaluation scores,
      # as the original (its val split steers discovery, its test split scores the tasks).
      # Original: 5k of 50k. 0 = take them from the held-out part (the evaluation then scores
      # images that steered discovery).
      meta_val_fraction=0.1,
      split_seed=0,                    # seed of the subset and the train/held-out split
  ))

  # Learners: the networks whose agreement defines a task's AS.
  c.learner = model_config("resnet18")

  # Task network: encoder -> Linear(d, no bias) -> BatchNorm (offset 0) -> d fixed directions.
  c.task = ml_collections.ConfigDict(dict(
      encoder=model_config("resnet18"),
      num_tasks=32,                    # d: embedding size = number of discovered tasks
      temperature=5.0,                 # task logits = temperature * [-<w,h>, <w,h>]
      # seed of the task directions: rows of a Haar-random rotation, or for
      # diversity='mutual_information' rows of N(0, 1) draws (the original's)
      rotation_seed=0,
      # 'uniformity' (original's default) | 'mutual_information' (the original's MI loss: log of
      # the summed pairwise MI, Gaussian directions) | 'mutual_information_divdis' (mean
      # pairwise MI, as DivDis, orthonormal directions) | 'none'
      diversity="uniformity",
      uniformity_t=2.0,                # t in log mean exp(-t ||z_i - z_j||^2)
      diversity_coef=5.0,              # original config: 5; its README command: 25
  ))

  # Inner loop: the unrolled training of learners inside the differentiable AS.
  c.inner = ml_collections.ConfigDict(dict(
      num_steps=50,                    # T unrolled SGD steps
      batch_size=512,                  # images per inner step (split between learners in 'meta')
      data_mode="meta",                # 'meta': each learner its own half | 'full': whole batch each
      num_learners=2,                  # learners per task (original: 2)
      optimizer="sgd",                 # 'sgd' (original) | 'momentum' | 'adam'
      # Per-learner step size. The original minimises 0.5 * (loss_0 + loss_1) with lr 0.01, so
      # each learner steps with 0.005 on its own loss.
      learning_rate=0.005,
      momentum=0.9,                    # for optimizer='momentum'
      eps_root=1e-8,                   # for optimizer='adam': > 0 keeps Adam differentiable
      random_init=False,               # False: same learner init every meta-step (original)
      heldout_batch_size=512,          # images on which the learners' agreement is measured
      resample_heldout=False,          # False: always the first images of the held-out part
      remat=True,                      # jax.checkpoint each inner step (memory for recompute)
      # How SGD learners keep their input layer: 'weights' (the kernel), 'samples' (the Gram
      # matrix of the unroll's inputs and the per-step deltas: same SGD, a fraction of the
      # FLOPs while T * batch per learner is below the input size; MLP learners and sgd only),
      # 'auto' (samples where that holds). See method/inner_loop.py.
      learner_updates="auto",
      # > 0: also checkpoint blocks of this many steps (nested remat): memory ~ T/K + K learner
      # carries instead of T, for one more forward of the unroll (benchmarks/README.md).
      remat_block=0,
      # > 0: each learner's gradient is the mean over microbatches of this many images, one
      # at a time under jax.checkpoint: the meta-gradient's working set shrinks with it, but
      # BatchNorm then normalises each microbatch by its own statistics (method/inner_loop.py);
      # 0: the whole batch, as the original. Weight-space learners only.
      microbatch_size=0,
      # Task-network forwards over the T inner batches: 'batched' (one call for all T batches,
      # activations kept: MLP encoders), 'per_step' (a checkpointed scan, one batch of
      # activations at a time: conv encoders), 'auto' (batched for 'mlp', else per_step).
      encoder_mode="auto",
  ))

  # Outer loop: meta-training of the task network.
  c.meta = ml_collections.ConfigDict(dict(
      num_steps=100000,                # meta-steps (the original's default)
      meta_batch_size=1,               # tasks per meta-step (1 = original: cycle over tasks)
      # 'shuffled' (original): the d tasks in a fresh order every cycle (from config.seed and
      # the cycle) | 'cyclic': 0, 1, ..., d-1 every cycle
      task_order="shuffled",
      optimizer="adam",                # optimiser of the encoder
      learning_rate=1e-3,
      # Meta-gradient (method/estimators.py, docs/estimators.md): 'full' backprop |
      # 'truncated' (backprop through the last K inner steps only) | 'es' (antithetic
      # evolution strategies on whole unrolls, forward only) | 'pes' (persistent ES: each
      # meta-step advances the learners K steps, unrolls of T steps span T / K meta-steps)
      estimator="full",
      truncation_length=10,            # K for estimator='truncated' and 'pes' (must divide T)
      es_sigma=0.01,                   # 'es'/'pes': std of the Gaussian perturbations of theta
      es_num_pairs=8,                  # 'es'/'pes': antithetic pairs (2x as many unrolls)
      log_every=10,                    # meta-steps between metric records
  ))

  # Evaluation protocol of the AS (full training on hard labels).
  c.eval = ml_collections.ConfigDict(dict(
      num_learners=2,                  # networks per task; AS = mean pairwise agreement
      optimizer="adam",
      learning_rate=1e-3,
      batch_size=512,
      num_epochs=100,
      # True: a fresh order of the training part every epoch (the original's check_as.py);
      # False: one seeded order for every epoch (its train-2net.py with as-eval-default.yaml,
      # shuffle: False). Either way the remainder below a full batch is dropped.
      reshuffle=True,
      tasks_per_chunk=4,               # tasks trained together in one compiled computation
      predict_batch_size=1024,
      # human-labelled tasks (data/tasks.py): evenly spaced over the listed class splits (126
      # for 10 classes) or a dataset's own tasks (CelebA: 40 attributes); for more than 10
      # classes the first of a seeded sequence of splits
      num_human_tasks=126,
      num_random_tasks=8,
      evaluate_discovered=True,        # after 'discover': evaluate every discovered task
      # job='agreement': also evaluate tasks from this file (.npz key 'labels', .npy or .csv;
      # the original's discovered.csv too, docs/original.md)
      labels_file="",
      labels_columns=(),               # tasks of labels_file: names, patterns ('mlp-*') or indices
      # job='agreement': also evaluate the tasks of this discovery workdir, or of an imported
      # original checkpoint (python -m task_discovery.import_original)
      discovery_workdir="",
      # job='agreement': reference AS per task name (the original's agreement_table.csv),
      # printed and saved beside this library's AS of the tasks of the same names
      reference_file="",
  ))

  # Devices: one mesh with a 'data' axis; the meta-batch and the evaluated tasks are split
  # along it, parameters are replicated.
  c.mesh = ml_collections.ConfigDict(dict(
      # devices on the 'data' axis; 0 = all devices of every host (for meta-training: the most
      # devices that divide meta.meta_batch_size)
      num_devices=0,
  ))
  # Hosts: jax.distributed.initialize for multi-process runs (SLURM, TPU pods, several GPUs
  # machines). Empty / negative fields are auto-detected where JAX supports it.
  c.distributed = ml_collections.ConfigDict(dict(
      initialize=False,                # True on every process of a multi-host run
      coordinator_address="",          # 'host:port' of process 0 ('' = auto-detect)
      num_processes=0,                 # 0 = auto-detect
      process_id=-1,                   # -1 = auto-detect
  ))

  # Adversarial train/test splits (docs/method.md#adversarial-splits), job='adversarial_split':
  # for a target task tau and a discovered task tau_d, train = {tau != tau_d},
  # test = {tau == tau_d}, over all images of the dataset; learners follow the `eval` protocol
  # and are compared with random splits of the same sizes. See `data/splits.py` for the policy
  # on unequal split sizes.
  c.adversarial = ml_collections.ConfigDict(dict(
      source="discovery",              # tau_d from: 'discovery' | 'file' | 'random_network'
      discovery_workdir="",            # source='discovery': workdir of a job='discover' run made
                                       # with the same data config (reads its tasks.npz)
      labels_file="",                  # source='file': tau_d's (.npz key 'labels', .npy or .csv)
      discovered_tasks=(),             # tasks of the discovered set to use, by index or name
                                       # (pattern: 'resnet18-*'); () = all
                                       # (ignored for source='random_network')
      num_random_networks=8,           # source='random_network': networks, each one tau_d
      # source='random_network': architecture of the randomly initialised network whose scalar
      # output, thresholded at the per-class median, is tau_d (original: ImageNet variant).
      random_network=model_config("resnet18"),
      target_tasks=(0, 11, 18, 27, 31, 38, 40),  # human task indices (the original's targets), or
                                       # tasks of target_labels_file (indices or names); () = all
                                       # (not for more than 10 classes: their splits are not
                                       # listed)
      target_labels_file="",           # '' = human-labelled targets; else binary targets from this
                                       # file (.npz key 'labels', .npy or .csv)
      mirror=False,                    # also the mirror split: train = {tau == tau_d}
      include_kway=True,               # also K-way learners on the original classes, same splits
      # Pairs whose smaller part (train or test) holds less than this fraction of the images are
      # skipped: every split is subsampled to the smallest kept part, so one near-identical pair
      # would otherwise shrink all splits.
      min_part_fraction=0.2,
  ))

  c.checkpoint = ml_collections.ConfigDict(dict(
      every_steps=500,                 # meta-steps between checkpoints
      max_to_keep=3,
  ))
  # jax.profiler trace of this many meta-steps, after the run's first (compiling) one, into
  # WORKDIR/profile/ (run/profiling.py); 0 = off.
  c.profile_steps = 0
  # Precision of the float32 matrix products and convolutions of the meta-step and of the
  # evaluation's and adversarial splits' learners (`jax.default_matmul_precision`): 'highest'
  # (full float32) | 'high' | 'default' (the backend's faster passes: TF32 on NVIDIA GPUs from
  # Ampere on, bfloat16 passes on TPUs). CPUs compute all three in float32, so a config saved
  # before this field is taken as 'highest'.
  c.precision = "highest"
  # JAX's persistent compilation cache: a rerun of a config loads its compiled steps from disk
  # instead of compiling them again. Results do not depend on it.
  c.compilation_cache = ml_collections.ConfigDict(dict(
      enabled=True,
      dir="",                          # '' = $XDG_CACHE_HOME/task_discovery/jax (~/.cache/...)
  ))
  return c


def load_config_file(path: str, arg: str = "") -> ml_collections.ConfigDict:
  """`get_config(arg)` of a config file given by path (config files are not a package)."""
  if not os.path.exists(path):
    raise FileNotFoundError(f"config file {path!r} does not exist")
  name = "_config_" + os.path.splitext(os.path.basename(path))[0]
  spec = importlib.util.spec_from_file_location(name, path)
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  return module.get_config(arg)


def _tuples(value):
  if isinstance(value, dict):
    return {k: _tuples(v) for k, v in value.items()}
  return tuple(_tuples(v) for v in value) if isinstance(value, list) else value


def load_config_json(path: str) -> ml_collections.ConfigDict:
  """A config saved as JSON (a workdir's `config.json`), read as data: nothing is executed.

  JSON lists become tuples, as in `base()`. Fields of `base()` that the file lacks (added to the
  library after it was written) keep their defaults.
  """
  if not os.path.isfile(path):
    raise FileNotFoundError(f"config JSON {path!r} does not exist")
  try:
    with open(path) as f:
      values = json.load(f)
  except ValueError as e:
    raise ValueError(f"config JSON {path!r} is not valid JSON: {e}") from e
  if not isinstance(values, dict):
    raise ValueError(f"config JSON {path!r} holds a {type(values).__name__}, not an object")
  config = base()
  with config.unlocked():
    config.update(_tuples(values))
  return config


def learner_batch_size(inner: ml_collections.ConfigDict) -> int:
  """Images each learner sees per inner step: its share of the batch ('meta') or all of it."""
  return inner.batch_size // (inner.num_learners if inner.data_mode == "meta" else 1)


def _check(ok: bool, field: str, message: str) -> None:
  if not ok:
    raise ValueError(f"config.{field}: {message}")


def _task_selector(t) -> bool:
  """A task picked by index (>= 0) or by name / pattern."""
  if isinstance(t, str):
    return bool(t) and not t.startswith("-")
  return not isinstance(t, bool) and int(t) >= 0


def validate(c: ml_collections.ConfigDict) -> None:
  """Raises ValueError naming the field for values out of range. Model names are checked by
  `models`, dataset names by `datasets`."""
  _check(c.job in JOBS, "job", f"{c.job!r} is not one of {JOBS}")
  _check(0 < c.data.heldout_fraction < 1, "data.heldout_fraction", "must be in (0, 1)")
  _check(0 <= c.data.meta_val_fraction < 1 - c.data.heldout_fraction, "data.meta_val_fraction",
         "must be in [0, 1 - data.heldout_fraction): the training part must not be empty")
  _check(c.data.num_images >= 0, "data.num_images", "must be >= 0 (0 = all images)")
  _check(c.data.get("image_size", 0) >= 0, "data.image_size", "must be >= 0 (0 = as stored)")
  _check(c.task.num_tasks >= 1, "task.num_tasks", "must be >= 1")
  _check(c.task.temperature > 0, "task.temperature", "must be > 0")
  _check(c.task.diversity in DIVERSITIES, "task.diversity", f"must be one of {DIVERSITIES}")
  _check(c.task.diversity_coef >= 0, "task.diversity_coef", "must be >= 0")
  _check(c.inner.num_steps >= 1, "inner.num_steps", "must be >= 1")
  _check(c.inner.data_mode in ("meta", "full"), "inner.data_mode", "must be 'meta' or 'full'")
  _check(c.inner.num_learners >= 2, "inner.num_learners", "must be >= 2 (agreement needs a pair)")
  _check(c.inner.data_mode == "full" or c.inner.batch_size % c.inner.num_learners == 0,
         "inner.batch_size", "must be divisible by inner.num_learners when data_mode='meta'")
  _check(c.inner.learning_rate > 0, "inner.learning_rate", "must be > 0")
  _check(c.inner.learner_updates in ("auto", "weights", "samples"), "inner.learner_updates",
         "must be 'auto', 'weights' or 'samples'")
  _check(c.inner.remat_block >= 0, "inner.remat_block", "must be >= 0 (0 = off)")
  microbatch = c.inner.get("microbatch_size", 0)
  per_learner = learner_batch_size(c.inner)
  _check(microbatch >= 0 and (microbatch == 0 or per_learner % microbatch == 0),
         "inner.microbatch_size", f"must be 0 (off) or divide a learner's batch of {per_learner}")
  _check(not (microbatch and c.inner.learner_updates == "samples"), "inner.microbatch_size",
         "must be 0 with inner.learner_updates='samples' (only weight-space learners are "
         "microbatched); use learner_updates='auto' or 'weights'")
  _check(c.inner.encoder_mode in ("auto", "batched", "per_step"), "inner.encoder_mode",
         "must be 'auto', 'batched' or 'per_step'")
  _check(c.inner.optimizer != "adam" or c.inner.eps_root > 0, "inner.eps_root",
         "must be > 0 for optimizer='adam', or the meta-gradient is not finite")
  _check(c.meta.meta_batch_size >= 1, "meta.meta_batch_size", "must be >= 1")
  _check(c.meta.task_order in ("shuffled", "cyclic"), "meta.task_order",
         "must be 'shuffled' or 'cyclic'")
  _check(c.meta.meta_batch_size <= c.task.num_tasks, "meta.meta_batch_size",
         "must not exceed task.num_tasks")
  _check(c.meta.num_steps >= 0, "meta.num_steps", "must be >= 0")
  _check(c.meta.estimator in ESTIMATORS, "meta.estimator", f"must be one of {ESTIMATORS}")
  _check(c.meta.estimator != "truncated" or 1 <= c.meta.truncation_length <= c.inner.num_steps,
         "meta.truncation_length", "must be in [1, inner.num_steps] for estimator='truncated'")
  _check(c.meta.estimator != "pes" or (c.meta.truncation_length >= 1
                                       and c.inner.num_steps % c.meta.truncation_length == 0),
         "meta.truncation_length", "must divide inner.num_steps for estimator='pes'")
  _check(c.meta.estimator != "pes" or c.inner.learner_updates != "samples",
         "inner.learner_updates", "must be 'auto' or 'weights' for estimator='pes' (its "
         "windows carry the learners' weights)")
  _check(c.meta.es_sigma > 0, "meta.es_sigma", "must be > 0")
  _check(c.meta.es_num_pairs >= 1, "meta.es_num_pairs", "must be >= 1")
  _check(c.meta.log_every >= 1, "meta.log_every", "must be >= 1")
  _check(c.eval.num_learners >= 2, "eval.num_learners", "must be >= 2 (agreement needs a pair)")
  _check(c.eval.num_epochs >= 1, "eval.num_epochs", "must be >= 1")
  _check(c.eval.num_human_tasks >= 0 and c.eval.num_random_tasks >= 0, "eval",
         "num_human_tasks and num_random_tasks must be >= 0")
  _check(c.mesh.num_devices >= 0, "mesh.num_devices", "must be >= 0 (0 = all devices)")
  _check(c.checkpoint.every_steps >= 1, "checkpoint.every_steps", "must be >= 1")
  _check(c.precision in PRECISIONS, "precision", f"{c.precision!r} is not one of {PRECISIONS}")
  profile_steps = c.get("profile_steps", 0)
  _check(isinstance(profile_steps, int) and not isinstance(profile_steps, bool)
         and profile_steps >= 0, "profile_steps", "must be an integer >= 0 (0 = off)")
  a = c.adversarial
  _check(a.source in ADVERSARIAL_SOURCES, "adversarial.source",
         f"{a.source!r} is not one of {ADVERSARIAL_SOURCES}")
  _check(a.num_random_networks >= 1, "adversarial.num_random_networks", "must be >= 1")
  _check(all(_task_selector(t) for t in a.target_tasks), "adversarial.target_tasks",
         "must be indices >= 0 or task names")
  _check(all(_task_selector(t) for t in a.discovered_tasks), "adversarial.discovered_tasks",
         "must be indices >= 0 or task names")
  _check(all(_task_selector(t) for t in c.eval.get("labels_columns", ())),
         "eval.labels_columns", "must be indices >= 0 or column names")
  _check(0.0 <= a.min_part_fraction < 0.5, "adversarial.min_part_fraction",
         "must be in [0, 0.5): the smaller part of a split holds at most half the images")


def as_json(c: ml_collections.ConfigDict) -> dict:
  """The config as a JSON dict (tuples as lists), as `config.json` and checkpoints hold it."""
  return json.loads(c.to_json_best_effort())
