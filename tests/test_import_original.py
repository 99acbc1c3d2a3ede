"""`python -m task_discovery.import_original`: the original's Lightning checkpoints of its task
network, written here in its layout with torch, imported, loaded and used by the jobs.

torch is the optional extra `original`; CI installs it, so there the tests run, never skip."""

import json
import os
import sys

import jax
import numpy as np
import pytest

try:
  import torch
except ImportError:
  if os.environ.get("CI"):
    raise  # CI installs '.[original]': the import must be tested there
  pytest.skip("torch is not installed: pip install -e '.[original]'", allow_module_level=True)

import task_discovery
from task_discovery import config as config_lib
from task_discovery.original import importer
from task_discovery import import_original
from task_discovery import models
from task_discovery.data import tasks as tasks_lib
from task_discovery.original import checkpoint as original
from task_discovery.original import weights

INPUT_SHAPE = (32, 32, 3)
MEAN = np.asarray([125.3, 123.0, 113.9], np.float32) / 255
STD = np.asarray([63.0, 62.1, 66.7], np.float32) / 255


def _encoder_variables(family, d, seed=0):
  """Random variables of this library's encoder, every leaf distinct, activations of order 1:
  kernels scaled by their fan-in, BatchNorm scales and variances around 1."""
  encoder = models.make_encoder(config_lib.model_config(family), input_shape=INPUT_SHAPE,
                                embedding_dim=d)
  shapes = jax.eval_shape(encoder.init, jax.random.key(0))
  rng = np.random.default_rng(seed)

  def draw(path, s):
    name = jax.tree_util.keystr(path)
    if name.endswith("['kernel']"):
      return rng.standard_normal(s.shape) / np.sqrt(np.prod(s.shape[:-1]))
    if name.endswith("['var']") or name.endswith("['scale']"):
      return rng.uniform(0.5, 1.5, s.shape)
    return 0.1 * rng.standard_normal(s.shape)

  return encoder, jax.tree_util.tree_map_with_path(
      lambda p, s: draw(p, s).astype(np.float32), shapes)


def write_checkpoint(path, family="mlp", d=4, *, hparams=None, seed=0, state_extra=None):
  """A checkpoint as the original's Trainer.save_checkpoint writes one for ASUniformityTraining:
  the encoder (with its backbone's unused head and the task head), `linear_tasks`, the learners
  under `agreement_loss.`, Lightning's counters and `hyper_parameters`. Returns (encoder,
  variables, linear_tasks)."""
  encoder, variables = _encoder_variables(family, d, seed)
  state = {f"encoder.{k}": torch.tensor(v) for k, v in
           weights.flax_to_torch(variables, family, "encoder").items()}
  head = {"mlp": "fc5", "resnet18": "linear", "vit": "mlp_head.1"}[family]
  state[f"encoder.backbone.{head}.weight"] = torch.zeros(2, 8)
  state["encoder.classifier.weight"] = torch.zeros(2, d)
  state["encoder.projector.1.num_batches_tracked"] = torch.tensor(3)
  q, _ = np.linalg.qr(np.random.default_rng(seed + 1).standard_normal((d, d)))
  linear_tasks = q.astype(np.float32)
  state["linear_tasks"] = torch.tensor(linear_tasks)
  state["agreement_loss.models.0.fc1.weight"] = torch.zeros(3, 3)
  state.update(state_extra or {})
  hp = dict(arch=family, as_arch="mlp", h_dim=d, n_linear_tasks=d, task_temp=5.0,
            temperature=2, uniformity_coef=5.0, nsteps=50, batch_size=512,
            as_learning_rate=0.01, encoder_learning_rate=1e-3, dataset="cifar10",
            normalize=True, proj="linear", diversity_loss="uniformity", data_mode="meta",
            random_init=False, seed=0, meta_steps=100000)
  hp.update(hparams or {})
  torch.save({"epoch": 0, "global_step": 7, "pytorch-lightning_version": "1.5.1",
              "state_dict": state, "callbacks": {}, "optimizer_states": [],
              "lr_schedulers": [], "hparams_name": "kwargs", "hyper_parameters": hp}, path)
  return encoder, variables, linear_tasks


def _images(n=16, seed=2):
  return np.random.default_rng(seed).uniform(size=(n,) + INPUT_SHAPE).astype(np.float32)


# The MLP: test_mlp_labels_match_a_torch_forward_in_both_polarities, against torch itself.
@pytest.mark.parametrize("family", ["resnet18", "vit"])
def test_import_loads_the_checkpoints_encoder_directions_and_normalisation(tmp_path, family):
  ckpt = str(tmp_path / "checkpoint.ckpt")
  encoder, variables, w = write_checkpoint(ckpt, family, d=4)
  info = importer.import_checkpoint(ckpt, str(tmp_path / "wd"), batch_norm="running")
  assert info["name"] == f"{family}_d4" and info["global_step"] == 7
  net = task_discovery.load(str(tmp_path / "wd"))
  assert net.step == 7 and net.config.task.encoder.name == family and net.num_tasks == 4
  assert net.batch_norm == "running"
  x = _images()
  for train, batch_norm in ((False, "running"), (True, "batch")):  # 16 images: one batch
    h, _ = encoder.apply(variables, (x - MEAN) / STD, train)
    expected = np.asarray(h) @ -w.T  # polarity 'training': this library's w = -w_j
    scores = net.scores(x, batch_norm=batch_norm)
    # A layout error changes the scores by their own size; XLA's fusions move them by ~1e-4.
    np.testing.assert_allclose(scores, expected, atol=1e-3 * np.abs(expected).max())
    clear = np.abs(expected) > 1e-4 * np.abs(expected).max()  # labels away from the boundary
    np.testing.assert_array_equal((scores > 0)[clear], (expected > 0)[clear])


def _torch_fcnet_scores(state, linear_tasks, images, training=False):
  """The original's MLP task encoder, written here from its description
  (docs/method.md#network-families): fc -> ReLU -> BatchNorm three times, fc4 -> ReLU, then the
  projector (Linear without bias, BatchNorm without offset), scores <w_j, h>. BatchNorm on the
  running statistics, or with `training` on the images' own (as the original labels)."""
  f = torch.nn.functional
  t = {k: torch.as_tensor(v).clone() for k, v in state.items()}  # training updates running stats
  x = torch.tensor((images - MEAN) / STD).permute(0, 3, 1, 2).reshape(len(images), -1)
  bn = lambda x, p: f.batch_norm(x, t[f"{p}.running_mean"], t[f"{p}.running_var"],
                                 t[f"{p}.weight"], t.get(f"{p}.bias"), training, 0.1, 1e-5)
  for i in (1, 2, 3):
    x = bn(f.relu(f.linear(x, t[f"backbone.fc{i}.weight"], t[f"backbone.fc{i}.bias"])),
           f"backbone.bn{i}")
  x = f.relu(f.linear(x, t["backbone.fc4.weight"], t["backbone.fc4.bias"]))
  h = bn(f.linear(x, t["projector.0.weight"]), "projector.1")
  return (h @ torch.as_tensor(linear_tasks).T).numpy()


def test_mlp_labels_match_a_torch_forward_in_both_polarities(tmp_path):
  ckpt = str(tmp_path / "checkpoint_mlp.ckpt")
  _, variables, w = write_checkpoint(ckpt, "mlp", d=8, seed=3, hparams=dict(
      as_arch="resnet18", nsteps=20, batch_size=256, uniformity_coef=25.0))
  state = weights.flax_to_torch(variables, "mlp", "encoder")
  theirs = _torch_fcnet_scores(state, w, _images())
  for polarity, sign in (("training", -1.0), ("csv", 1.0)):
    workdir = str(tmp_path / polarity)
    importer.import_checkpoint(ckpt, workdir, polarity=polarity, name="mine",
                               batch_norm="running")
    ours = task_discovery.load(workdir).scores(_images())
    np.testing.assert_allclose(ours, sign * theirs, rtol=1e-4, atol=1e-4)
    np.testing.assert_array_equal(ours > 0, sign * theirs > 0)
  # The default, the original's labelling: every batch of consecutive images on its own
  # statistics (here batches of 16: 16 + 16 + 8; a last batch of one would join the one before).
  x = _images(40, seed=5)
  workdir = str(tmp_path / "batch")
  importer.import_checkpoint(ckpt, workdir)
  net = task_discovery.load(workdir)
  assert net.batch_norm == "batch" and net.default_batch_size == 512
  theirs = np.concatenate([-_torch_fcnet_scores(state, w, x[i:i + 16], training=True)
                           for i in (0, 16, 32)])
  ours = net.scores(x, batch_size=16)
  np.testing.assert_allclose(ours, theirs, rtol=1e-4, atol=1e-4)
  np.testing.assert_array_equal(ours > 0, theirs > 0)
  running = task_discovery.load(workdir, batch_norm="running").scores(x, batch_size=16)
  assert np.mean((running > 0) != (ours > 0)) > 0.05  # the two labellings are not the same
  assert not np.array_equal(net.scores(x, batch_size=40), ours)  # the batches are part of it
  with pytest.raises(ValueError, match="single image"):
    net.scores(x[:1])
  # Labelled in a loader's order: each entry's batches on their own statistics, the rest last
  # (a lone image left over: running statistics); an image may not be in two entries.
  from task_discovery.jobs import discovered
  order = np.random.default_rng(0).permutation(40)
  got = discovered.labels_in_batches(net, x, [order[:32], order[32:39]], batch_size=16)
  np.testing.assert_array_equal(got[:, order[16:32]], net(x[order[16:32]]).T)
  np.testing.assert_array_equal(got[:, order[32:39]], net(x[order[32:39]]).T)
  np.testing.assert_array_equal(got[:, order[39:]], net(x[order[39:]], batch_norm="running").T)
  with pytest.raises(ValueError, match="in two of the batches"):
    discovered.labels_in_batches(net, x, [order[:8], order[4:12]], batch_size=16)
  with pytest.raises(ValueError, match="batch_norm='eval' is not one of"):
    task_discovery.load(workdir, batch_norm="eval")
  # The config takes the original's hyper-parameters; the report says where it came from.
  with open(tmp_path / "csv" / "config.json") as f:
    c = json.load(f)
  assert c["learner"]["name"] == "resnet18" and c["task"]["encoder"]["name"] == "mlp"
  assert c["task"]["num_tasks"] == 8 and c["task"]["diversity_coef"] == 25.0
  assert c["inner"]["num_steps"] == 20 and c["inner"]["batch_size"] == 256
  assert c["inner"]["learning_rate"] == 0.005  # 0.01 on the mean of two learners' losses
  with open(tmp_path / "csv" / "report.json") as f:
    imported = json.load(f)["imported"]
  assert imported["name"] == "mine" and imported["polarity"] == "csv"
  assert imported["batch_norm"] == "running"
  assert len(imported["sha256"]) == 64


@pytest.mark.parametrize("case,match", [
    ("truncated", "truncated, damaged or not a PyTorch file"),
    ("two_network", "two-network training"),
    ("resnet50", "arch='resnet50'"),
    ("bare_state_dict", "not a PyTorch Lightning checkpoint"),
    ("code", "Python objects other than tensors"),
    ("fewer_tasks", "one task per embedding dimension"),
    ("mi_offsets", "offsets"),
])
def test_other_files_get_an_error_that_names_the_problem(tmp_path, case, match):
  path = str(tmp_path / "c.ckpt")
  if case == "truncated":
    write_checkpoint(path)
    with open(path, "rb") as f:
      data = f.read()
    with open(path, "wb") as f:
      f.write(data[:len(data) // 2])
  elif case == "two_network":
    torch.save({"state_dict": {"models.0.fc1.weight": torch.zeros(2, 2)},
                "hyper_parameters": {"arch": "mlp"}}, path)
  elif case == "resnet50":
    write_checkpoint(path, hparams=dict(arch="resnet50"))
  elif case == "bare_state_dict":
    torch.save({"fc1.weight": torch.zeros(2, 2)}, path)
  elif case == "code":
    torch.save({"state_dict": {}, "hyper_parameters": {}, "x": _Unsafe()}, path)
  elif case == "fewer_tasks":
    write_checkpoint(path, state_extra={"linear_tasks": torch.zeros(2, 4)})
  elif case == "mi_offsets":
    write_checkpoint(path, state_extra={"linear_tasks_bias": torch.ones(4)})
  with pytest.raises(original.OriginalCheckpointError, match=match):
    importer.import_checkpoint(path, str(tmp_path / "wd"))
  assert not os.path.exists(tmp_path / "wd")  # nothing written


class _Unsafe:
  pass


def test_without_torch_the_error_says_how_to_install_it(tmp_path, monkeypatch):
  path = str(tmp_path / "c.ckpt")
  write_checkpoint(path)
  monkeypatch.setitem(sys.modules, "torch", None)  # `import torch` raises ImportError
  with pytest.raises(ImportError, match=r"pip install -e '\.\[original\]'"):
    original.read(path)


def test_command_line_imports_and_reports_errors(tmp_path, capsys):
  path = str(tmp_path / "c.ckpt")
  write_checkpoint(path, d=4)
  args = [f"--checkpoint={path}", f"--workdir={tmp_path / 'wd'}"]
  assert import_original.main(args + ["--polarity=csv"]) == 0
  out = capsys.readouterr().out
  assert "imported mlp task network, d = 4 (tasks mlp_d4-0..3)" in out
  assert "polarity 'csv'" in out and "task_discovery.load(" in out
  before = sorted(os.listdir(tmp_path / "wd" / "checkpoints"))
  assert import_original.main(args) == 1
  err = capsys.readouterr().err
  assert err.startswith("error:") and "already holds" in err
  assert sorted(os.listdir(tmp_path / "wd" / "checkpoints")) == before  # left alone
  assert task_discovery.load(str(tmp_path / "wd")).num_tasks == 4
  with pytest.raises(SystemExit):  # argparse: --workdir is required
    import_original.main([f"--checkpoint={path}"])


def _original_csv(path, columns, num_rows):
  """A task file as the original's discovered.csv: pandas' unnamed index column, one column per
  task named `{arch}-{idx}`, one row per image of the source split in the source's order."""
  rng = np.random.default_rng(5)
  labels = rng.integers(0, 2, (len(columns), num_rows))
  with open(path, "w") as f:
    f.write("," + ",".join(columns) + "\n")
    for i in range(num_rows):
      f.write(f"{i}," + ",".join(str(v) for v in labels[:, i]) + "\n")
  return labels


def test_jobs_use_an_imported_workdir_the_original_csv_and_its_reference_as(tmp_path,
                                                                            monkeypatch):
  """On mock CIFAR-10 (a 128-image subset of 160 records): job='agreement' evaluates an
  imported checkpoint's tasks (eval.discovery_workdir) and columns of an original task file
  (rows in source order, picked by pattern), prints and saves the reference AS beside them;
  job='adversarial_split' takes the imported tasks as tau_d."""
  import tensorflow_datasets as tfds
  from task_discovery.data import datasets
  from task_discovery.jobs import adversarial
  from task_discovery.jobs import evaluation
  from task_discovery import main as main_lib
  ckpt = str(tmp_path / "checkpoint_mlp.ckpt")
  write_checkpoint(ckpt, "mlp", d=4, seed=4)
  imported = str(tmp_path / "imported")
  importer.import_checkpoint(ckpt, imported, polarity="csv", name="mlp")
  csv_path = str(tmp_path / "discovered.csv")
  file_labels = _original_csv(csv_path, ["mlp-0", "mlp-1", "vit-0"], 160)
  table = str(tmp_path / "agreement_table.csv")
  with open(table, "w") as f:
    f.write("task_idx,task,as\n0,mlp,0.90\n1,mlp,0.80\n3,mlp,0.70\n0,vit,0.60\n")
  c = config_lib.base()
  c.job, c.data.name, c.data.num_images = "agreement", "cifar10", 128
  c.learner = config_lib.model_config("mlp")
  c.learner.mlp_widths = (16,)
  c.eval.update(num_epochs=1, batch_size=32, num_human_tasks=1, num_random_tasks=1,
                discovery_workdir=imported, labels_file=csv_path, labels_columns=("mlp-*",),
                reference_file=table)
  c.mesh.num_devices = 1
  config_lib.validate(c)
  monkeypatch.setattr(datasets, "_tfds_is_prepared", lambda builder: True)
  with tfds.testing.mock_data(num_examples=160):
    dataset = datasets.load_dataset(c.data)
    report = main_lib.run_job(c, str(tmp_path / "run"))
    # The original's file: rows are source records, the subset picks them by source_index.
    names, labels = tasks_lib.load_task_file(csv_path, dataset.num_images,
                                             source_index=dataset.source_index)
    np.testing.assert_array_equal(labels, file_labels[:, dataset.source_index])
    # The imported tasks label as the original: each batch its loaders serve (training part in
    # the evaluation's order, then the held-out part) on that batch's BatchNorm statistics.
    families, _ = evaluation.extra_families(c, dataset)
    net, raw = task_discovery.load(imported), dataset.raw_images()
    train_order, heldout = evaluation.loader_batches(c, dataset)
    assert len(train_order) == len(dataset.train_idx) // 32 * 32
    assert set(train_order) <= set(dataset.train_idx.tolist())
    np.testing.assert_array_equal(heldout, dataset.heldout_idx)
    for batch in np.split(train_order, len(train_order) // 32) + [heldout[:32]]:
      np.testing.assert_array_equal(families["discovered"][1][:, batch],
                                    net(raw[batch], batch_size=32).T)
    c.job = "adversarial_split"
    c.eval.update(discovery_workdir="", labels_file="", labels_columns=(), reference_file="")
    tau = task_discovery.load(imported)(dataset.raw_images()).T
    both = [f"mlp-{i}" for i in range(4) if 0 < tau[i].mean() < 1][:1]
    c.adversarial.update(discovery_workdir=imported, discovered_tasks=tuple(both),
                         target_tasks=(0,))
    ids, chosen = adversarial.load_discovered(c, dataset)
  assert names == ["mlp-0", "mlp-1", "vit-0"]
  assert report["summary"]["discovered"]["num_tasks"] == 4
  assert report["summary"]["file"]["num_tasks"] == 2
  named = {(e["family"], e.get("name")) for e in report["tasks"]}
  assert {("discovered", f"mlp-{i}") for i in range(4)} <= named
  assert {("file", "mlp-0"), ("file", "mlp-1")} <= named
  reference = report["reference"]
  rows = {(r["family"], r["name"]): r for r in reference["tasks"]}
  assert set(rows) == {("discovered", "mlp-0"), ("discovered", "mlp-1"), ("discovered", "mlp-3"),
                       ("file", "mlp-0"), ("file", "mlp-1")}
  for r in rows.values():
    assert r["difference"] == pytest.approx(r["agreement"] - r["reference"])
  assert rows[("file", "mlp-1")]["reference"] == 0.80
  assert list(ids) == [int(both[0].split("-")[1])]
  np.testing.assert_array_equal(chosen[0], tau[ids[0]])


def test_tiny_imagenet_checkpoints_get_the_directory_source_at_their_size():
  for name, size in (("tiny_imagenet", 32), ("tiny_imagenet_64", 64)):
    c = importer.config_from_hparams(dict(h_dim=32, dataset=name), "resnet18",
                                     original.DATASETS[name])
    config_lib.validate(c)
    assert (c.data.name, c.data.source, c.data.image_size) == ("tiny_imagenet", "directory",
                                                               size)
    assert original.DATASETS[name]["input_shape"] == (size, size, 3)
