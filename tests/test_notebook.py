"""experiments/explore_tasks.ipynb runs top to bottom, headless, on workdirs made by this test.

A tiny `discover` job (configs/digits.py:smoke, shrunk further) and a tiny `adversarial_split` job
on its tasks write the workdirs; the notebook then runs under nbclient in a kernel of this very
interpreter, with the workdirs passed through the environment variables its parameters cell
reads. Section 5 runs twice in that kernel: with the adversarial workdir (it shows a measured
split) and, after `ADV_WORKDIR` is pointed elsewhere, without it (it builds a split itself,
without training).
"""

import importlib.util
import os
import sys

import pytest

import xla_flags

nbformat = pytest.importorskip(
    "nbformat", reason="running the notebook needs nbformat: pip install -e '.[test]'")
nbclient = pytest.importorskip(
    "nbclient", reason="running the notebook needs nbclient: pip install -e '.[test]'")
ipykernel_kernelspec = pytest.importorskip(
    "ipykernel.kernelspec", reason="running the notebook needs ipykernel: pip install -e '.[test]'")

from task_discovery import main as main_lib  # noqa: E402

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
NOTEBOOK = os.path.join(REPO, "experiments", "explore_tasks.ipynb")
KERNEL_NAME = "task_discovery_test"
FIGURE_CELLS = ("task-images", "as-families", "similarity", "adversarial-split")
ADVERSARIAL_CELLS = ("adversarial-split", "adversarial-accuracy")


def load_config(name: str, arg: str = ""):
  # Config files are loaded by path (they are not a package), as the command line does.
  spec = importlib.util.spec_from_file_location(f"_notebook_test_{name}",
                                                os.path.join(REPO, "configs", f"{name}.py"))
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  return module.get_config(arg)


def shrink(c):
  """configs/*.py:smoke made smaller still: seconds per job on 2 CPU cores."""
  c.meta.num_steps = 2
  c.meta.log_every = 1
  c.checkpoint.every_steps = 2
  c.task.num_tasks = 4
  c.task.encoder.mlp_widths = (16,)
  c.learner.mlp_widths = (16,)
  c.eval.num_epochs = 1
  c.eval.num_human_tasks = 2
  c.eval.num_random_tasks = 2
  c.eval.tasks_per_chunk = 8
  return c


@pytest.fixture(scope="module")
def workdirs(tmp_path_factory):
  """(discovery workdir, adversarial workdir), both complete."""
  root = tmp_path_factory.mktemp("notebook")
  discovery_dir, adversarial_dir = str(root / "digits"), str(root / "digits_adversarial")
  main_lib.run_job(shrink(load_config("digits", "smoke")), discovery_dir)
  config = shrink(load_config("digits_adversarial", "smoke"))
  config.adversarial.discovery_workdir = discovery_dir
  config.adversarial.target_tasks = (0,)
  config.adversarial.discovered_tasks = (0,)
  config.adversarial.mirror = True        # 2 splits: the split and its mirror
  config.adversarial.include_kway = False
  config.adversarial.min_part_fraction = 0.0
  main_lib.run_job(config, adversarial_dir)
  return discovery_dir, adversarial_dir


@pytest.fixture(scope="module")
def kernel_dir(tmp_path_factory):
  """A Jupyter data dir whose only kernel runs this interpreter (a `python3` kernelspec elsewhere
  on the machine, e.g. in the user's home, could start another Python)."""
  prefix = tmp_path_factory.mktemp("jupyter")
  ipykernel_kernelspec.install(prefix=str(prefix), kernel_name=KERNEL_NAME)
  return os.path.join(str(prefix), "share", "jupyter")


def run_notebook(kernel_dir: str, tmp: str, workdir: str, adversarial_workdir: str,
                 missing_workdir: str) -> tuple[dict, dict]:
  """Runs the notebook top to bottom in a fresh kernel, then, as one would after changing the
  parameter, sets `ADV_WORKDIR` to a workdir that does not exist and reruns section 5.

  Returns:
    `({cell id: cell} of the full run, {cell id: cell} of the rerun)`, with outputs.
  """
  nb = nbformat.read(NOTEBOOK, as_version=4)
  with pytest.MonkeyPatch.context() as env:  # the kernel inherits this environment
    env.setenv("TD_WORKDIR", workdir)
    env.setenv("TD_ADV_WORKDIR", adversarial_workdir)
    env.setenv("MPLBACKEND", "Agg")
    env.setenv("JUPYTER_PATH", kernel_dir)
    env.setenv("JUPYTER_RUNTIME_DIR", os.path.join(tmp, "runtime"))
    env.setenv("IPYTHONDIR", os.path.join(tmp, "ipython"))
    # One CPU device, as in a user's kernel; the suite's compile flags.
    env.setenv("XLA_FLAGS", xla_flags.without_device_count(os.environ["XLA_FLAGS"]))
    # Working directory: the repository root, where README's commands write runs/.
    client = nbclient.NotebookClient(nb, timeout=300, kernel_name=KERNEL_NAME,
                                     resources={"metadata": {"path": REPO}})
    rerun = [nbformat.v4.new_code_cell(f"ADV_WORKDIR = {missing_workdir!r}",
                                       id="rerun-parameters")]
    for cell in nb.cells:
      if cell.get("id") in ADVERSARIAL_CELLS:
        rerun.append(nbformat.v4.new_code_cell(cell.source, id=f"rerun-{cell.id}"))
    num_cells = len(nb.cells)
    nb.cells += rerun  # in memory only
    client.execute()  # raises CellExecutionError, with the cell's traceback, if a cell fails
  cells = {c.id: c for c in nb.cells[:num_cells] if c.cell_type == "code"}
  return cells, {c.id.removeprefix("rerun-"): c for c in nb.cells[num_cells:]}


@pytest.fixture(scope="module")
def executed(workdirs, kernel_dir, tmp_path_factory):
  tmp = str(tmp_path_factory.mktemp("kernel"))
  return run_notebook(kernel_dir, tmp, *workdirs, os.path.join(tmp, "no_such_workdir"))


def text(cell) -> str:
  return "".join(o.get("text", "") for o in cell.outputs if o.output_type == "stream")


def num_images(cell) -> int:
  return sum("image/png" in o.get("data", {}) for o in cell.outputs)


def test_kernel_runs_this_interpreter(kernel_dir):
  from jupyter_client.kernelspec import KernelSpecManager
  spec = KernelSpecManager(kernel_dirs=[os.path.join(kernel_dir, "kernels")]).get_kernel_spec(
      KERNEL_NAME)
  assert spec.argv[0] == sys.executable


@pytest.mark.slow
def test_notebook_loads_the_run_and_shows_every_figure(executed):
  cells, _ = executed
  for cell_id, cell in cells.items():
    assert not [o for o in cell.outputs if o.output_type == "error"], cell_id
  assert not cells["install"].outputs  # the package is importable: nothing is installed
  assert "dataset digits, d = 4 tasks, 2 meta-steps" in text(cells["load"])
  assert "labels match tasks.npz: True" in text(cells["labels"])
  for cell_id in FIGURE_CELLS + ("adversarial-accuracy",):
    assert num_images(cells[cell_id]) >= 1, cell_id
  table = "\n" + text(cells["as-families"])
  for family in ("random", "human", "discovered"):
    assert f"\n{family} " in table, family


@pytest.mark.slow
def test_notebook_shows_a_split_of_the_adversarial_workdir(executed, workdirs):
  cells, _ = executed
  split = text(cells["adversarial-split"])
  assert f"split 0 of 2 in {workdirs[1]}: target 0 x discovered 0;" in split
  # The split shown is the adversarial one: tau and tau_d disagree on all of train, agree on test.
  assert "train: tau == tau_d on 0.00 of it" in split
  assert "test: tau == tau_d on 1.00 of it" in split
  assert "binary" in text(cells["adversarial-accuracy"])


@pytest.mark.slow
def test_notebook_builds_a_split_without_adversarial_workdir(executed):
  _, rerun = executed
  split = text(rerun["adversarial-split"])
  assert "building one split here (no training)" in split
  assert "train: tau == tau_d on 0.00 of it" in split
  assert "test: tau == tau_d on 1.00 of it" in split
  assert num_images(rerun["adversarial-split"]) == 1
  assert num_images(rerun["adversarial-accuracy"]) == 0
  assert "no learners were trained" in text(rerun["adversarial-accuracy"])
