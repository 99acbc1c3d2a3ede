r"""The original setting on CIFAR-10 (docs/method.md), for GPU/TPU machines.

Command:
  python -m task_discovery.main --config=configs/cifar.py --workdir=runs/cifar
  # the original README's uniformity coefficient:
  python -m task_discovery.main --config=configs/cifar.py --workdir=runs/cifar25 \
      --config.task.diversity_coef=25
  # AS of human- and random-labelled tasks only (the paper's baseline families):
  python -m task_discovery.main --config=configs/cifar.py --workdir=runs/cifar_as \
      --config.job=agreement

Data: TFDS `cifar10` (prepare it once on a machine with internet, see docs/datasets.md), the 50k
training images split 40k train / 5k meta-validation / 5k held-out with a fixed seed (the
original: 45k / 5k, and CIFAR-10's test split to score the tasks; see `config.base()`),
per-channel normalisation, no augmentation.
Learners and encoder: CIFAR ResNet-18 (~11.2M parameters), initialised as PyTorch does. 100,000
meta-steps (the original's default), each on one task, the d tasks reshuffled every cycle.
d = 32 tasks, T = 50 unrolled SGD
steps on batches of 512 (each learner its own 256), per-learner lr 0.005 (the original's lr 0.01
on 0.5 * (l0 + l1)), the same learner initialisation at every meta-step, uniformity coefficient
5, encoder trained with Adam 1e-3. Evaluation: two ResNet-18s per task, Adam 1e-3, batch 512,
100 epochs, AS on the 5k held-out images.

Expected (the released reference, official code, 5k held-out images): mean AS of discovered
tasks with ResNet-18 and d = 32: 0.879 (range 0.859-0.907); with d = 8: 0.931 (0.884-0.964);
MLP d = 32: 0.941 (0.925-0.962); ViT d = 32: 0.704 (0.618-0.805). Human-labelled tasks lie
below the discovered ones and random-labelled tasks at about 0.5.

Cost: every meta-step unrolls 50 ResNet-18 steps and differentiates through them; plan on a GPU
(`pip install -e '.[cuda12]'`) and raise `meta.meta_batch_size` to fill it. `:smoke` shrinks
everything for a quick check of the whole pipeline.
"""

from task_discovery import config as config_lib


def get_config(arg: str = ""):
  c = config_lib.base()  # the base config holds the original's defaults
  c.data.name = "cifar10"
  c.data.heldout_fraction = 0.1  # 5k held-out; data.meta_val_fraction 0.1: 5k meta-validation
  c.learner = config_lib.model_config("resnet18")
  c.task.encoder = config_lib.model_config("resnet18")
  c.task.num_tasks = 32
  c.meta.num_steps = 100000  # the original's default
  c.eval.num_human_tasks = 126
  c.eval.num_random_tasks = 8
  if arg == "smoke":
    # The whole pipeline in a few seconds of compute: 256 images (26 held-out, 26
    # meta-validation, 204 train), ResNet-18s at 1/8 of the width, 2 meta-steps.
    c.data.num_images = 256
    c.learner.resnet_width = 8
    c.task.encoder.resnet_width = 8
    c.task.num_tasks = 4
    c.inner.num_steps = 2
    c.inner.batch_size = 32
    c.inner.heldout_batch_size = 16  # within the 26 meta-validation images
    c.meta.num_steps = 2
    c.meta.log_every = 1
    c.eval.num_epochs = 1
    c.eval.batch_size = 32
    c.eval.num_human_tasks = 2
    c.eval.num_random_tasks = 2
  elif arg:
    raise ValueError(f"unknown config argument {arg!r}; use '' or 'smoke'")
  return c
