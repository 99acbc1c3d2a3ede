"""The original's evaluation protocol as an oracle: the official side of `peer_eval_parity.py`.

Runs in a Python with torch and pytorch-lightning 1.5 (benchmarks/README.md, "Setting up the
original"), never in this project's environment, and imports nothing of this project. The
original's code is imported at run time from the checkout named by `PEER_REPO`; nothing of it is
copied here.

    PEER_REPO=<TaskDiscovery checkout> python peer_eval_oracle.py IN.npz OUT.npz

IN.npz: `settings` (a JSON string: seeds, max_epochs, arch, threads), `images` `[N, 3, 32, 32]`
float32 (normalised, NCHW), `labels` `[T, N]` 0/1 task labels, `train_idx`, `heldout_idx`.

Every task is trained as the original's `train-2net.py` trains it (its README command:
`--config configs/as-eval/as-eval-default.yaml --task_out_type class --return_indicies`), one
task after another, for every seed: `utils.set_seeds(seed)`, hyperparameters from its parser's
defaults then the YAML (Adam 1e-3, batch 512, data_mode 'full', shuffle False, validation every
10 epochs), its `TwoSupervisedModels` (two learners, the loss 0.5 * (l0 + l1) under one Adam)
with its `CIFARClassificationTask` of type 'table' (labels looked up by image index, as its
random tasks) and `ClassificationAgreementScore`, then `pl.Trainer.fit` and `pl.Trainer.test`.
The AS is the test loop's `test_acc_agreement` (argmax agreement of the two learners in eval
mode on the held-out images; checked against the same computed over all of them at once).

CIFAR-10 is replaced by the given images: the data module (`datautils`, which needs torchvision
and pl_bolts) is a stand-in that serves them as the original's loaders would with these
settings: training batches of `(images, class labels, indices)` in one fixed seeded order
(`shuffle` False; the original's order is its `random_split`'s, seed `data_seed` 42) or a new
order per epoch from the global torch generator (`shuffle` True), the last partial batch
dropped (datautils' `drop_last` default), held-out batches of 512 in order; workers 0.

OUT.npz: `agreement` `[S, T]`, `accuracy` `[S, T, 2]` (each learner's held-out accuracy),
`seconds` `[S, T]` (per task: building the module, fit and test; imports excluded).
"""
import argparse
import contextlib
import os
import sys
import time

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import peer_oracle  # noqa: E402  (beside this script: the stand-ins of unused modules)

EVAL_CONFIG = 'configs/as-eval/as-eval-default.yaml'
DATA_SEED = 42  # datautils' --data_seed default: the seed of its random_split


def hparams(peer_repo, **overrides):
  """The hyperparameters as `train-2net.py` builds them: its parser (`TwoSupervisedModels`'s and
  `pl.Trainer`'s arguments, and of datautils' the ones the evaluation reads, with their
  defaults), its `set_defaults`, then the evaluation YAML, then `overrides`."""
  import pytorch_lightning as pl
  import yaml
  from models.supervised import TwoSupervisedModels
  parser = argparse.ArgumentParser()
  parser.add_argument('--seed', type=int, default=0)
  parser.add_argument('--n_classes', type=int, default=2)
  parser = TwoSupervisedModels.add_model_specific_args(parser)
  parser = pl.Trainer.add_argparse_args(parser)
  # datautils.MyCIFAR10DataModule.add_argparse_args (not importable here): these defaults.
  parser.add_argument('--batch_size', type=int, default=256)
  parser.add_argument('--data_seed', type=int, default=DATA_SEED)
  parser.add_argument('--val_split', type=float, default=0.1)
  parser.add_argument('--no_drop_last', dest='drop_last', action='store_false', default=True)
  parser.add_argument('--shuffle', dest='shuffle', action='store_true')
  parser.add_argument('--return_indicies', action='store_true', default=False)
  parser.set_defaults(random_labelling=False, val_split=0.1, automatic_optimization=True,
                      shuffle=True)
  with open(os.path.join(peer_repo, EVAL_CONFIG)) as f:
    parser.set_defaults(**yaml.safe_load(f))
  hp = vars(parser.parse_args(['--return_indicies']))
  hp.update(overrides)
  return hp


def make_data_module(torch, images, train_idx, heldout_idx):
  """The stand-in for `datautils.MyCIFAR10DataModule` (module docstring)."""
  from torch.utils.data import DataLoader, TensorDataset

  x = torch.from_numpy(images)
  idx = torch.arange(len(images))
  zeros = torch.zeros(len(images), dtype=torch.long)  # class labels: a 'table' task ignores them
  # random_split's order: a permutation of the training part from the data seed.
  order = torch.as_tensor(train_idx)[torch.randperm(
      len(train_idx), generator=torch.Generator().manual_seed(DATA_SEED))]
  held = torch.as_tensor(heldout_idx)

  class Data:  # its loaders go to fit / test as such (PL 1.5's data-module hooks fail on 3.11)
    dims = (3, 32, 32)

    def __init__(self, batch_size, shuffle, drop_last, **kwargs):
      self.batch_size, self.shuffle, self.drop_last = batch_size, shuffle, drop_last

    def _loader(self, part, shuffle, drop_last):
      return DataLoader(TensorDataset(x[part], zeros[part], idx[part]),
                        batch_size=self.batch_size, shuffle=shuffle, drop_last=drop_last,
                        num_workers=0)

    def train_dataloader(self):
      return self._loader(order, self.shuffle, self.drop_last)

    def val_dataloader(self):
      return self._loader(held, False, False)

    test_dataloader = val_dataloader

  return Data


def train_task(torch, peer_repo, data_cls, labels, heldout_idx, images, seed, settings):
  """One task, one seed, as `train-2net.py`: (AS, [acc_0, acc_1])."""
  import pytorch_lightning as pl
  import utils as peer_utils
  from models.agreement_score import ClassificationAgreementScore
  from models.supervised import TwoSupervisedModels
  from models.tasks import CIFARClassificationTask
  hp = hparams(peer_repo, seed=seed, arch=settings['arch'], max_epochs=settings['max_epochs'])
  peer_utils.set_seeds(seed)
  data = data_cls(**hp)
  task = CIFARClassificationTask(task_type='table', n_classes=2)
  task.lookup_table = torch.nn.Parameter(torch.as_tensor(labels).long(), requires_grad=False)
  for p in task.parameters():
    p.requires_grad = False
  task.eval()
  model = TwoSupervisedModels(**{k: v for k, v in hp.items() if k != 'task'},
                              agreement_score=ClassificationAgreementScore(), task=task,
                              in_dim=data.dims[0])
  trainer = pl.Trainer(
      gpus=0, logger=False, max_epochs=hp['max_epochs'], max_steps=hp['max_steps'],
      log_every_n_steps=hp['log_every_n_steps'], val_check_interval=hp['val_check_interval'],
      check_val_every_n_epoch=hp['check_val_every_n_epoch'],
      limit_val_batches=hp['limit_val_batches'], deterministic=hp['deterministic'],
      checkpoint_callback=False, enable_progress_bar=False, enable_model_summary=False)
  trainer.fit(model, train_dataloaders=data.train_dataloader(),
              val_dataloaders=data.val_dataloader())
  result = trainer.test(model, dataloaders=data.test_dataloader(), verbose=False)[0]
  with torch.no_grad():  # the same over all held-out images at once (test() averages batches)
    x = torch.from_numpy(images[heldout_idx])
    p0, p1 = (m.eval()(x).argmax(1) for m in model.models)
  y = torch.as_tensor(labels[heldout_idx]).long()
  agreement = float((p0 == p1).float().mean())
  if abs(agreement - result['test_acc_agreement']) > 1e-6:
    raise RuntimeError(f"test loop's AS {result['test_acc_agreement']} != {agreement}")
  return agreement, [float((p == y).float().mean()) for p in (p0, p1)]


def main():
  data, settings, outputs, peer_repo = peer_oracle.command_line(__doc__, 'outputs')
  images, labels = data['images'], data['labels']
  train_idx, heldout_idx = data['train_idx'], data['heldout_idx']
  with contextlib.redirect_stdout(sys.stderr):  # the original prints its modules
    import torch
    torch.set_num_threads(settings['threads'])
    peer_oracle.enter_checkout(peer_repo, ([], []))
    import logging
    logging.getLogger('pytorch_lightning').setLevel(logging.ERROR)
    data_cls = make_data_module(torch, images, train_idx, heldout_idx)
    sys.modules['datautils'].MyCIFAR10DataModule = data_cls
    shape = (len(settings['seeds']), len(labels))
    out = dict(agreement=np.zeros(shape), accuracy=np.zeros(shape + (2,)),
               seconds=np.zeros(shape))
    for s, seed in enumerate(settings['seeds']):
      for t in range(len(labels)):
        t0 = time.perf_counter()
        out['agreement'][s, t], out['accuracy'][s, t] = train_task(
            torch, peer_repo, data_cls, labels[t], heldout_idx, images, seed, settings)
        out['seconds'][s, t] = time.perf_counter() - t0
        print(f'[oracle] seed {seed} task {t}: AS {out["agreement"][s, t]:.4f} '
              f'({out["seconds"][s, t]:.1f} s)', file=sys.stderr, flush=True)
  np.savez(outputs, **out)


if __name__ == '__main__':
  main()
