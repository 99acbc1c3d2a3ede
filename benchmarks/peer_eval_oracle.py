"""The original's evaluation protocol as an oracle: the official side of `peer_eval_parity.py`.

Runs in a Python with torch and pytorch-lightning 1.5 (benchmarks/README.md, "Setting up the
original"), never in this project's environment, and imports nothing of this project. The
original's code is imported at run time from the checkout named by `PEER_REPO`; nothing of it is
copied here.

    PEER_REPO=<TaskDiscovery checkout> python peer_eval_oracle.py IN.npz OUT.npz

IN.npz: `settings` (a JSON string: seeds, max_epochs, arch, threads, and optionally
`data_seeds`, one per seed, and `discovered`), `images` `[N, 3, 32, 32]` float32 (normalised,
NCHW), `labels` `[T, N]` 0/1 task labels, `train_idx`, `heldout_idx`.

Every task is trained as the original's `train-2net.py` trains it (its README command:
`--config configs/as-eval/as-eval-default.yaml --task_out_type class --return_indicies`), one
task after another, for every seed: `utils.set_seeds(seed)`, hyperparameters from its parser's
defaults then the YAML (Adam 1e-3, batch 512, data_mode 'full', shuffle False, validation every
10 epochs), its `TwoSupervisedModels` (two learners, the loss 0.5 * (l0 + l1) under one Adam)
with its `CIFARClassificationTask` of type 'table' (labels looked up by image index, as its
random tasks) and `ClassificationAgreementScore`, then `pl.Trainer.fit` and `pl.Trainer.test`.
The AS is the test loop's `test_acc_agreement` (argmax agreement of the two learners in eval
mode on the held-out images; checked against the same computed over all of them at once).

Discovered tasks (`settings['discovered']`: `checkpoint`, a checkpoint of the original's
`ASUniformityTraining`, and `tasks`, the indices of its linear tasks) are the task of
train-2net.py's `--task_type emb --emb_lin_task learned --task_idx i`: a
`CIFAREmbeddingClassificationTask` with the checkpoint's backbone and projector and the
classifier `task_temp * [w_i, -w_i]` (what its `set_task(i)` writes), `out_type` 'class'. It labels
every batch the loaders serve as it comes, in its `forward` after `self.encoder.eval()`, which
leaves BatchNorm on the batch's statistics; they follow the 'table' tasks in the outputs.

CIFAR-10 is replaced by the given images: the data module (`datautils`, which needs torchvision
and pl_bolts) is a stand-in that serves them as the original's loaders would with these
settings: training batches of `(images, class labels, indices)` in one fixed seeded order
(`shuffle` False; the original's order is its `random_split`'s, from its `--data_seed`: 42
unless `data_seeds` gives one per seed) or a new order per epoch from the global torch
generator (`shuffle` True), the last partial batch dropped (datautils' `drop_last` default),
held-out batches of 512 in order; workers 0.

OUT.npz: `agreement` `[S, T + D]`, `accuracy` `[S, T + D, 2]` (each learner's held-out
accuracy), `seconds` `[S, T + D]` (per task: building the module, fit and test; imports
excluded), `labels` `[S, T + D, N]` (each task's labels of the images in its training and test
batches, labelled batch by batch as served; -1 elsewhere; after the timing), `train_order`
`[S, n]` (the images of the training batches in the order served).
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


def make_data_module(torch, images, train_idx, heldout_idx, data_seed=DATA_SEED):
  """The stand-in for `datautils.MyCIFAR10DataModule` (module docstring)."""
  from torch.utils.data import DataLoader, TensorDataset

  x = torch.from_numpy(images)
  idx = torch.arange(len(images))
  zeros = torch.zeros(len(images), dtype=torch.long)  # class labels: a 'table' task ignores them
  # random_split's order: a permutation of the training part from the data seed.
  order = torch.as_tensor(train_idx)[torch.randperm(
      len(train_idx), generator=torch.Generator().manual_seed(data_seed))]
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


def table_task(torch, labels):
  """A task given by its labels, looked up by image index (its random tasks' kind)."""
  from models.tasks import CIFARClassificationTask
  task = CIFARClassificationTask(task_type='table', n_classes=2)
  task.lookup_table = torch.nn.Parameter(torch.as_tensor(labels).long(), requires_grad=False)
  return task


def embedding_task(torch, ckpt, index):
  """Linear task `index` of an `ASUniformityTraining` checkpoint (`torch.load`ed), built as
  train-2net.py builds it after `load_from_checkpoint` (module docstring; the checkpoint's
  tensors are read directly, so no data module is needed)."""
  from models.tasks import CIFAREmbeddingClassificationTask
  hp, state = ckpt['hyper_parameters'], ckpt['state_dict']
  task = CIFAREmbeddingClassificationTask(h_dim=hp['h_dim'], in_dim=(3, 32, 32),
                                          out_type='class', arch=hp['arch'], n_classes=2)
  for part in ('backbone', 'projector'):
    prefix = f'encoder.{part}.'
    getattr(task.encoder, part).load_state_dict(
        {k[len(prefix):]: v for k, v in state.items() if k.startswith(prefix)})
  w = state['linear_tasks'][index]
  with torch.no_grad():
    task.encoder.classifier.weight.copy_(hp['task_temp'] * torch.stack([w, -w]))
  return task


def task_labels(torch, task, images, idx, batch_size):
  """The labels the task gives `images[idx]` served in batches of `batch_size`, as the test loop
  computes them."""
  with torch.no_grad():
    return torch.cat([task(torch.from_numpy(images[b]), None, torch.as_tensor(b))
                      for b in (idx[i:i + batch_size] for i in range(0, len(idx), batch_size))])


def train_task(torch, peer_repo, data_cls, task_fn, heldout_idx, images, seed, settings):
  """One task, one seed, as `train-2net.py`: (AS, [acc_0, acc_1], labels [N]: the task's labels
  of the images its training and test batches hold, -1 for the others)."""
  import pytorch_lightning as pl
  import utils as peer_utils
  from models.agreement_score import ClassificationAgreementScore
  from models.supervised import TwoSupervisedModels
  hp = hparams(peer_repo, seed=seed, arch=settings['arch'], max_epochs=settings['max_epochs'])
  peer_utils.set_seeds(seed)
  data = data_cls(**hp)
  task = task_fn()
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
  y = task_labels(torch, task, images, heldout_idx, hp['batch_size'])
  agreement = float((p0 == p1).float().mean())
  if abs(agreement - result['test_acc_agreement']) > 1e-6:
    raise RuntimeError(f"test loop's AS {result['test_acc_agreement']} != {agreement}")
  seen = np.full(len(images), -1, np.int64)
  order = []
  for x, _, idx in data.train_dataloader():  # the training batches as fit() saw them
    seen[idx.numpy()] = task_labels(torch, task, images, idx.numpy(), len(idx)).numpy()
    order.append(idx.numpy())
  seen[heldout_idx] = y.numpy()
  return agreement, [float((p == y).float().mean()) for p in (p0, p1)], seen, np.concatenate(order)


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
    discovered = settings.get('discovered') or {'tasks': []}
    ckpt = (torch.load(discovered['checkpoint'], map_location='cpu', weights_only=True)
            if discovered['tasks'] else None)  # read once, every task and seed builds from it
    task_fns = ([lambda t=t: table_task(torch, labels[t]) for t in range(len(labels))] +
                [lambda i=i: embedding_task(torch, ckpt, i) for i in discovered['tasks']])
    data_seeds = settings.get('data_seeds') or [DATA_SEED] * len(settings['seeds'])
    shape = (len(settings['seeds']), len(task_fns))
    out = dict(agreement=np.zeros(shape), accuracy=np.zeros(shape + (2,)),
               seconds=np.zeros(shape), labels=np.zeros(shape + (len(images),), np.int64),
               train_order=[])
    for s, (seed, data_seed) in enumerate(zip(settings['seeds'], data_seeds)):
      data_cls = make_data_module(torch, images, train_idx, heldout_idx, data_seed)
      sys.modules['datautils'].MyCIFAR10DataModule = data_cls
      out['train_order'].append(None)
      for t, task_fn in enumerate(task_fns):
        t0 = time.perf_counter()
        (out['agreement'][s, t], out['accuracy'][s, t], out['labels'][s, t],
         order) = train_task(torch, peer_repo, data_cls, task_fn, heldout_idx, images, seed,
                             settings)
        out['seconds'][s, t] = time.perf_counter() - t0
        out['train_order'][s] = order
        print(f'[oracle] seed {seed} (data seed {data_seed}) task {t}: AS '
              f'{out["agreement"][s, t]:.4f} ({out["seconds"][s, t]:.1f} s)', file=sys.stderr,
              flush=True)
  np.savez(outputs, **out)


if __name__ == '__main__':
  main()
