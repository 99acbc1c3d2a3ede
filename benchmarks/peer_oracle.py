"""The original PyTorch implementation as a numerical oracle: the official side of `peer_parity.py`.

Runs in a Python with torch, higher and pytorch-lightning (benchmarks/README.md, "Setting up the
original"), never in this project's environment, and imports nothing of this project. The
original's code is imported at run time from the checkout named by `PEER_REPO`; nothing of it is
copied here. `peer_timing.py` builds the original's module with the helpers below too.

    PEER_REPO=<TaskDiscovery checkout> python peer_oracle.py IN.npz OUT.npz

IN.npz: `settings` (a JSON string: family, nsteps list, batch, h_dim, task, seed, dtype),
`x_train` `[T_max, B, 3, 32, 32]` and `x_val` `[B, 3, 32, 32]` (NCHW). For every T in
`nsteps` the original's own `ASUniformityTraining` is built (seeded: the same initial weights
for every T), with CIFAR-10 replaced by these batches: inner step t trains on `x_train[t]`
(each learner on its half, data_mode='meta'), the agreement is measured on `x_val`. One
meta-step is what pytorch_lightning runs, `training_step` then `backward`, once with the
configured uniformity coefficient and once with 0 (the agreement term's gradient alone).

OUT.npz, for each T (prefix `T<T>/`): the initial weights (`enc/`, `learner0/`, `learner1/`
state dicts, `linear_tasks`), the learners' parameters after each inner step
(`step<t>/<name>`, names of `AgreementLoss.models.named_parameters()`), `ag_loss`,
`uniformity_loss`, `loss`, and the encoder gradients `grad/<name>` (full loss) and
`grad_as/<name>` (agreement term).
"""
import argparse
import contextlib
import itertools
import json
import os
import sys
import types
import warnings

import numpy as np

CIFAR_CLASSES = ['airplane', 'automobile', 'bird', 'cat', 'deer', 'dog', 'frog', 'horse', 'ship',
                 'truck']
PEER_CONFIG = 'configs/as-uniformity-encoder/as-uniformity-default.yaml'


def install_stubs(batches):
  """sys.modules stand-ins for the modules the meta-step never runs (data download, logging),
  and a data module that serves `batches` (train list, val list) in a fixed order. The lists
  are served as they are when the module is built: refill them in place to change the data."""

  class Data:
    dims = (3, 32, 32)

    def __init__(self, batch_size=None, **kwargs):
      self.batch_size = batch_size

    def setup(self, stage=None):
      pass

    def train_dataloader(self, *args, **kwargs):
      return batches[0]

    def val_dataloader(self, *args, **kwargs):
      return batches[1]

    test_dataloader = val_dataloader

  class NoOp:
    def __init__(self, *args, **kwargs):
      pass

  def stub(name, **attrs):
    module = types.ModuleType(name)
    module.__dict__.update(attrs)
    sys.modules[name] = module

  stub('wandb', Histogram=NoOp, Table=NoOp, Image=NoOp, save=lambda *a, **k: None,
       log=lambda *a, **k: None)
  stub('skorch', NeuralNetClassifier=NoOp)
  stub('torchvision')
  stub('tiny_imagenet', TinyImageNetDataModule=NoOp)
  stub('datautils', MyCIFAR10DataModule=Data, CIFAR_CLASSES=CIFAR_CLASSES,
       REAL_TASKS=list(itertools.combinations(CIFAR_CLASSES, 5))[:126])
  try:
    import tkinter.messagebox  # noqa: F401
  except ImportError:
    stub('tkinter')
    stub('tkinter.messagebox', NO='no')
    sys.modules['tkinter'].messagebox = sys.modules['tkinter.messagebox']


def cifar_batch(torch, x):
  """`x` as a batch of the original's CIFAR-10 loader with `return_indicies=True`: (images,
  class labels, indices). The meta-step reads only the images."""
  n = len(x)
  return x, torch.zeros(n, dtype=torch.long), torch.arange(n)


def enter_checkout(peer_repo, batches):
  """Makes the original's modules importable: pytorch_lightning first (as its scripts do), then
  the stand-ins (`install_stubs(batches)`), the checkout on sys.path and as the working
  directory (models/tasks.py reads assets/ relative to it on import)."""
  import pytorch_lightning  # noqa: F401
  install_stubs(batches)
  sys.path.insert(0, peer_repo)
  os.chdir(peer_repo)


def hparams(peer_repo, **overrides):
  """The hyperparameters as `train-as-uniformity.py` builds them: its parser's defaults, then
  the default discovery YAML, then `overrides` (as_loss='as' unless given)."""
  import yaml
  from models.as_uniformity import ASUniformityTraining
  parser = argparse.ArgumentParser()
  parser.add_argument('--seed', type=int, default=0)
  parser.add_argument('--meta_steps', type=int, default=int(1e5))
  parser.add_argument('--encoder_learning_rate', type=float, default=1e-3)
  parser.add_argument('--save_step_frequency', type=int, default=100)
  parser = ASUniformityTraining.add_model_specific_args(parser)
  parser.add_argument('--batch_size', type=int, default=256)
  parser.add_argument('--shuffle', action='store_true', default=True)
  parser.add_argument('--normalize', action='store_true', default=True)
  with open(os.path.join(peer_repo, PEER_CONFIG)) as f:
    parser.set_defaults(**yaml.safe_load(f))
  hp = vars(parser.parse_args([]))
  hp.update(as_loss='as')
  hp.update(overrides)
  return hp


def numpy_dict(tensors, prefix):
  return {f'{prefix}/{k}': v.detach().cpu().numpy() for k, v in tensors}


def one_setting(torch, peer_repo, settings, nsteps):
  from models.as_uniformity import ASUniformityTraining
  import utils as peer_utils
  peer_utils.set_seeds(settings['seed'])
  family = settings['family']
  model = ASUniformityTraining(**hparams(
      peer_repo, arch=family, as_arch=family, nsteps=nsteps, batch_size=settings['batch'],
      h_dim=settings['h_dim'], n_linear_tasks=settings['h_dim'], seed=settings['seed']))
  if settings['dtype'] == 'float64':
    model.double()
  model.train()  # as Lightning's fit loop
  ag = model.agreement_loss
  out = {}
  out.update(numpy_dict(model.encoder.state_dict().items(), 'enc'))
  for i in range(2):  # the learners' fixed initial weights (random_init=False)
    init = {k[len(f'{i}.'):]: v for k, v in ag.models._models_init.items()
            if k.startswith(f'{i}.')}
    out.update(numpy_dict(init.items(), f'learner{i}'))
  out['linear_tasks'] = model.linear_tasks.detach().cpu().numpy()

  names = [n for n, _ in ag.models.named_parameters()]
  trajectory = []
  opt_step = ag._opt_step

  def recording_opt_step(*args, **kwargs):  # an instance attribute; the class is untouched
    result = opt_step(*args, **kwargs)
    if not torch.is_grad_enabled():  # the checkpoint's first pass: the plain SGD step
      trajectory.append([p.detach().cpu().numpy().copy() for p in result[1:]])
    return result

  ag._opt_step = recording_opt_step
  enc = [(n, p) for n, p in model.encoder.named_parameters() if p.requires_grad]
  batch = [torch.tensor([settings['task']])]
  coef = model.hparams.uniformity_coef
  for key, uniformity_coef in (('grad', coef), ('grad_as', 0.0)):
    model.hparams.uniformity_coef = uniformity_coef
    for _, p in enc:
      p.grad = None
    logs = model.training_step(batch, 0)
    logs['loss'].backward()
    # backbone.fc5 of an MLP encoder is trainable but unused: its gradient is None
    out.update(numpy_dict([(n, p.grad) for n, p in enc if p.grad is not None], key))
    if key == 'grad':
      out['loss'] = np.asarray(float(logs['loss']))
      out['ag_loss'] = np.asarray(float(logs['ag_loss']))
      out['uniformity_loss'] = np.asarray(float(logs['uniformity_loss']))
      steps = trajectory[:nsteps]
  model.hparams.uniformity_coef = coef
  if len(steps) != nsteps:
    raise RuntimeError(f'recorded {len(steps)} inner steps, expected {nsteps}')
  for t, params in enumerate(steps, 1):
    out.update({f'step{t}/{n}': v for n, v in zip(names, params)})
  return out


def command_line(doc, output):
  """`(inputs, settings, output path, peer repo)` of a script run as `SCRIPT IN.npz OUTPUT`:
  the arrays of IN.npz, its JSON `settings`, OUTPUT made absolute (the original is imported from
  `PEER_REPO`, its checkout, which `enter_checkout` makes the working directory)."""
  parser = argparse.ArgumentParser(description=doc,
                                   formatter_class=argparse.RawDescriptionHelpFormatter)
  parser.add_argument('inputs')
  parser.add_argument(output)
  args = parser.parse_args()
  data = np.load(args.inputs)
  warnings.filterwarnings('ignore')
  return (data, json.loads(str(data['settings'])), os.path.abspath(getattr(args, output)),
          os.path.abspath(os.environ['PEER_REPO']))


def main():
  data, settings, outputs, peer_repo = command_line(__doc__, 'outputs')
  with contextlib.redirect_stdout(sys.stderr):  # the original prints its modules
    import torch
    torch.set_num_threads(settings.get('threads', 2))
    dtype = torch.float64 if settings['dtype'] == 'float64' else torch.float32
    # float64: the default dtype too, or the original's running sum of the uniformity term
    # (`torch.zeros(1)`, plus 0-dim float64 terms) stays float32 by PyTorch's promotion rules.
    torch.set_default_dtype(dtype)
    x_train = torch.from_numpy(data['x_train']).to(dtype)
    x_val = torch.from_numpy(data['x_val']).to(dtype)
    batches = ([], [cifar_batch(torch, x_val)])
    enter_checkout(peer_repo, batches)
    out = {}
    for nsteps in settings['nsteps']:
      batches[0][:] = [cifar_batch(torch, x) for x in x_train[:nsteps]]
      result = one_setting(torch, peer_repo, settings, nsteps)
      out.update({f'T{nsteps}/{k}': v for k, v in result.items()})
      print(f'[oracle] {settings["family"]} T={nsteps} {settings["dtype"]}: '
            f'loss={float(result["loss"]):.6f}', file=sys.stderr, flush=True)
  np.savez(outputs, **out)


if __name__ == '__main__':
  main()
