"""The package's layout: module and function sizes, docstrings, and the import graph between its
layers (docs/architecture.md).

Cheap: the source is parsed with `ast`; nothing of the library is imported, nothing compiles.
Each rule is also checked against a small made-up package that breaks it, so a checker that
stopped finding anything would fail here too.
"""
import ast
import pathlib

import pytest

PACKAGE_DIR = pathlib.Path(__file__).resolve().parent.parent / "task_discovery"
PACKAGE = "task_discovery"

MAX_MODULE_LINES = 450
MAX_FUNCTION_LINES = 80
# Config schemas: one field per line with its comment, so their length is the schema's.
LONG_FUNCTIONS_ALLOWED = frozenset({"task_discovery.config.base"})

# The layers, lowest first. A module may import modules of its own group and of groups in lower
# layers, never of a higher layer or of another group of its own layer (models and data know
# nothing of each other). Top-level modules other than `config`, `keys` and `loader` are the entry
# points.
LAYERS = (
    ("config", "keys"),     # the schema; the named random streams: import nothing of the library
    ("run",),               # the run's plumbing, used from every layer above
    ("models", "data"),     # networks; datasets, tasks, splits
    ("method",),            # agreement score, inner loop, meta-objective, estimators
    # a trained task network from a workdir (task_discovery.load); the original's checkpoints
    ("loader", "original"),
    ("jobs",),              # discover, agreement, adversarial_split
    ("entry",),             # main, import_original, json_config, __init__
)
RANK = {group: rank for rank, groups in enumerate(LAYERS) for group in groups}


# ------------------------------------------------------------------------------ the checkers


def read_package(directory: pathlib.Path, package: str) -> dict[str, tuple[pathlib.Path, str]]:
  """`{dotted module name: (path, source)}` of every module under `directory`."""
  modules = {}
  for path in sorted(directory.rglob("*.py")):
    parts = path.relative_to(directory).with_suffix("").parts
    if parts[-1] == "__init__":
      parts = parts[:-1]
    modules[".".join((package,) + parts)] = (path, path.read_text())
  return modules


def is_package(modules: dict, name: str) -> bool:
  return modules[name][0].name == "__init__.py"


def group_of(name: str, modules: dict, package: str = PACKAGE) -> str:
  """The layer group of a module: its subpackage, `config`, `keys`, `loader`, or `entry` (the
  other top-level modules and the package's `__init__`)."""
  parts = name.split(".")
  if len(parts) == 1:
    return "entry"
  top = ".".join(parts[:2])
  if is_package(modules, top):
    return parts[1]
  return parts[1] if parts[1] in ("config", "keys", "loader") else "entry"


def long_functions(tree: ast.AST, module: str) -> dict[str, int]:
  """`{qualified name: lines}` of every function or method, nested ones too, decorators
  included, longer than `MAX_FUNCTION_LINES`."""
  found = {}

  def visit(node, prefix):
    for child in ast.iter_child_nodes(node):
      if isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef)):
        start = min([child.lineno] + [d.lineno for d in child.decorator_list])
        lines = child.end_lineno - start + 1
        if lines > MAX_FUNCTION_LINES:
          found[f"{prefix}.{child.name}"] = lines
        visit(child, f"{prefix}.{child.name}")
      elif isinstance(child, ast.ClassDef):
        visit(child, f"{prefix}.{child.name}")
      else:
        visit(child, prefix)

  visit(tree, module)
  return found


def imported_modules(tree: ast.AST, module: str, modules: dict, package: str) -> set[str]:
  """The modules of the package that `module` imports, at module level or inside functions.

  `from P import X` counts as an import of `P.X` when that is a module, else of `P`.
  """
  out = set()
  for node in ast.walk(tree):  # every node: function-level imports count too
    if isinstance(node, ast.Import):
      out |= {a.name for a in node.names if a.name.split(".")[0] == package}
    elif isinstance(node, ast.ImportFrom):
      base = node.module or ""
      if node.level:  # relative: resolved against this module's package
        here = module.split(".")
        anchor = here if is_package(modules, module) else here[:-1]
        anchor = anchor[:len(anchor) - node.level + 1]
        base = ".".join(anchor + ([base] if base else []))
      if base.split(".")[0] != package:
        continue
      for alias in node.names:
        out.add(f"{base}.{alias.name}" if f"{base}.{alias.name}" in modules else base)
  return {name for name in out if name in modules and name != module}


def oversized_modules(modules: dict) -> dict[str, int]:
  sizes = {name: len(source.splitlines()) for name, (_, source) in modules.items()}
  return {name: size for name, size in sizes.items() if size > MAX_MODULE_LINES}


def all_long_functions(modules: dict) -> dict[str, int]:
  found = {}
  for name, (_, source) in modules.items():
    found.update(long_functions(ast.parse(source), name))
  return found


def undocumented_modules(modules: dict) -> list[str]:
  """Modules without a docstring (its first line says what the module holds)."""
  return [name for name, (_, source) in sorted(modules.items())
          if not (ast.get_docstring(ast.parse(source)) or "").strip()]


def import_graph(modules: dict, package: str) -> dict[str, set[str]]:
  return {name: imported_modules(ast.parse(source), name, modules, package)
          for name, (_, source) in modules.items()}


def layer_violations(graph: dict[str, set[str]], modules: dict, package: str) -> list[str]:
  bad = []
  for source, targets in sorted(graph.items()):
    here = group_of(source, modules, package)
    for target in sorted(targets):
      there = group_of(target, modules, package)
      if there != here and RANK[there] >= RANK[here]:
        bad.append(f"{source} ({here}) imports {target} ({there})")
  return bad


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
  """One import cycle as `[a, b, ..., a]`, or None."""
  state, stack = {}, []

  def visit(node):
    state[node] = "open"
    stack.append(node)
    for nxt in sorted(graph.get(node, ())):
      if state.get(nxt) == "open":
        return stack[stack.index(nxt):] + [nxt]
      if nxt not in state:
        cycle = visit(nxt)
        if cycle:
          return cycle
    state[node] = "done"
    stack.pop()
    return None

  for node in sorted(graph):
    if node not in state:
      cycle = visit(node)
      if cycle:
        return cycle
  return None


# ---------------------------------------------------------------------------- the package


MODULES = read_package(PACKAGE_DIR, PACKAGE)


def test_every_group_has_a_layer():
  groups = {group_of(name, MODULES) for name in MODULES}
  assert groups <= set(RANK), f"modules outside every layer: {groups - set(RANK)}"
  assert {"run", "models", "data", "method", "jobs"} <= groups


def test_no_module_over_450_lines():
  oversized = oversized_modules(MODULES)
  assert not oversized, f"modules over {MAX_MODULE_LINES} lines: {oversized}"


def test_no_function_over_80_lines_but_config_schemas():
  found = all_long_functions(MODULES)
  too_long = {f: n for f, n in found.items() if f not in LONG_FUNCTIONS_ALLOWED}
  assert not too_long, f"functions over {MAX_FUNCTION_LINES} lines: {too_long}"
  assert set(found) == LONG_FUNCTIONS_ALLOWED, "an allowed function is short now: drop it"


def test_every_module_says_what_it_holds():
  undocumented = undocumented_modules(MODULES)
  assert not undocumented, f"modules without a docstring: {undocumented}"


def test_imports_point_down_the_layers():
  bad = layer_violations(import_graph(MODULES, PACKAGE), MODULES, PACKAGE)
  assert not bad, "imports against the layers:\n  " + "\n  ".join(bad)


def test_no_import_cycle():
  cycle = find_cycle(import_graph(MODULES, PACKAGE))
  assert cycle is None, "import cycle: " + " -> ".join(cycle or [])


# -------------------------------------------------------------- the checkers can fail


@pytest.fixture
def broken(tmp_path):
  """A made-up package that breaks every rule once."""
  root = tmp_path / PACKAGE
  files = {
      "__init__.py": '"""Entry."""\n',
      "config.py": '"""Schema."""\n',
      "run/__init__.py": '"""Plumbing."""\n',
      "run/plots.py": '"""Figures."""\n\ndef draw():\n  from task_discovery.run import seeds\n',
      "run/seeds.py": '"""Seeds."""\nfrom task_discovery.run import plots\n',
      "models/__init__.py": "",
      "models/mlp.py": '"""MLP."""\nfrom task_discovery.data import datasets\n',
      "data/__init__.py": '"""Data."""\n',
      "data/datasets.py": '"""Datasets."""\nfrom .. import config\n',
      "method/__init__.py": '"""Method."""\n',
      "method/meta.py": ('"""Meta."""\n\n\ndef long():\n' + "  x = 1\n" * MAX_FUNCTION_LINES
                         + "\n\ndef lazy():\n  from task_discovery.jobs import discovery\n"),
      "jobs/__init__.py": '"""Jobs."""\n',
      "jobs/discovery.py": '"""Discovery."""\n' + "#\n" * MAX_MODULE_LINES,
  }
  for name, text in files.items():
    (root / name).parent.mkdir(parents=True, exist_ok=True)
    (root / name).write_text(text)
  return read_package(root, PACKAGE)


def test_the_checkers_find_what_breaks_the_rules(broken):
  graph = import_graph(broken, PACKAGE)
  assert graph["task_discovery.data.datasets"] == {"task_discovery.config"}  # relative import
  assert find_cycle(graph) == ["task_discovery.run.plots", "task_discovery.run.seeds",
                               "task_discovery.run.plots"]  # through a function-level import
  assert layer_violations(graph, broken, PACKAGE) == [
      "task_discovery.method.meta (method) imports task_discovery.jobs.discovery (jobs)",
      "task_discovery.models.mlp (models) imports task_discovery.data.datasets (data)"]
  assert all_long_functions(broken) == {"task_discovery.method.meta.long": MAX_FUNCTION_LINES + 1}
  assert oversized_modules(broken) == {"task_discovery.jobs.discovery": MAX_MODULE_LINES + 1}
  assert undocumented_modules(broken) == ["task_discovery.models"]
