"""Checkpoints written by the original's own training, and its task labels on given images: the
original's side of `peer_import_check.py`.

Runs in a Python with torch, higher and pytorch-lightning (benchmarks/README.md, "Setting up the
original"), never in this project's environment, and imports nothing of this project. The
original's code is imported at run time from the checkout named by `PEER_REPO`.

    PEER_REPO=<TaskDiscovery checkout> python peer_checkpoint.py IN.npz OUTDIR

IN.npz: `settings` (a JSON string: families, h_dim, steps, seed, label_batch), `images` `[N, 32, 32, 3]` in
[0, 1] (NHWC, as this project takes them) and `train` `[T, B, 3, 32, 32]` (the batches of the
meta-steps). For each family the original's `ASUniformityTraining` (`arch` = that family, MLP
learners) is built as `peer_oracle.py` builds it and trained for `steps` meta-steps by
pytorch_lightning's own `Trainer.fit`, which then writes `OUTDIR/checkpoint_<family>.ckpt` with
`Trainer.save_checkpoint`, as the original's checkpoint callback does. Its task scores on the
images follow, normalised as the original's CIFAR-10 data module does (pl_bolts'
`cifar10_normalization`), in `OUTDIR/scores_<family>.npz`:
  * `eval_mode`: `<w_j, h(x)>` `[N, n]` with every module of the encoder in eval mode (BatchNorm
    on its running statistics);
  * `batch_mode`: the same after `model.eval()`, as the original labels every image (its
    notebooks, and train-2net.py's `CIFAREmbeddingClassificationTask.forward`, which calls
    `self.encoder.eval()`): `TaskDiscoveryEncoder.train(False)` keeps its backbone and projector
    in training mode, so BatchNorm normalises with the statistics of the batch given. The
    images go in consecutive batches of `label_batch` (512: its evaluation's batches).
"""
import contextlib
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import peer_oracle  # noqa: E402  (beside this file; imports nothing of this project)

CIFAR10_MEAN = [x / 255.0 for x in (125.3, 123.0, 113.9)]
CIFAR10_STD = [x / 255.0 for x in (63.0, 62.1, 66.7)]


def train_and_save(torch, pl, peer_repo, settings, family, path):
  from models.as_uniformity import ASUniformityTraining
  import utils as peer_utils
  peer_utils.set_seeds(settings['seed'])
  model = ASUniformityTraining(**peer_oracle.hparams(
      peer_repo, arch=family, as_arch='mlp', nsteps=settings['nsteps'],
      batch_size=settings['batch'], h_dim=settings['h_dim'], n_linear_tasks=settings['h_dim'],
      seed=settings['seed'], coverage_eval=False))
  trainer = pl.Trainer(max_steps=settings['steps'], logger=False, checkpoint_callback=False,
                       num_sanity_val_steps=0, limit_val_batches=0, progress_bar_refresh_rate=0,
                       weights_summary=None)
  # Its val_dataloader reads the data module's training set (the stand-in has none); no
  # validation batch runs (limit_val_batches=0), but the loader is built.
  model.data_module.dataset_train = range(settings['batch'])
  trainer.fit(model)
  trainer.save_checkpoint(path)
  return model


def scores(torch, model, images, label_batch):
  x = torch.from_numpy(images).permute(0, 3, 1, 2).float().contiguous()
  mean = torch.tensor(CIFAR10_MEAN)[None, :, None, None]
  std = torch.tensor(CIFAR10_STD)[None, :, None, None]
  x = (x - mean) / std
  out = {}
  with torch.no_grad():
    for m in model.encoder.modules():  # every module, past the encoder's train() override
      m.training = False
    out['eval_mode'] = model.logits_all_tasks(x).numpy()
    model.eval()  # as the original labels: BatchNorm stays in training mode
    out['batch_mode'] = np.concatenate([
        model.logits_all_tasks(x[i:i + label_batch]).numpy()
        for i in range(0, len(x), label_batch)])
  return out


def main():
  data, settings, outdir, peer_repo = peer_oracle.command_line(__doc__, 'outdir')
  with contextlib.redirect_stdout(sys.stderr):  # the original prints its modules
    import torch
    import pytorch_lightning as pl
    torch.set_num_threads(2)
    train = [peer_oracle.cifar_batch(torch, torch.from_numpy(x)) for x in data['train']]
    batches = (train, train[:1])
    peer_oracle.enter_checkout(peer_repo, batches)
    for family in settings['families']:
      path = os.path.join(outdir, f'checkpoint_{family}.ckpt')
      model = train_and_save(torch, pl, peer_repo, settings, family, path)
      np.savez(os.path.join(outdir, f'scores_{family}.npz'), **scores(torch, model, data['images'],
                                                              settings['label_batch']))
      print(f'[original] {family}: {path}', file=sys.stderr, flush=True)


if __name__ == '__main__':
  main()
