"""The documentation stands on its own: what it names exists in this repository.

  (a) No file of the repository (those `git ls-files` lists, tracked or new and not ignored)
      except LICENSE points outside it: no path into a sibling `shared` folder, no citation of a
      specification document that is not part of the repository (the method is described in
      docs/method.md).
  (b) Every repository path named in README.md, docs/*.md and the docstrings of configs/*.py
      and experiments/*.py exists: `task_discovery/...py`, `configs/*.py`, `experiments/*.py`,
      `benchmarks/*.py`, `docs/*.md`, and the package-relative `method/meta.py` style. Every
      relative Markdown link of README.md and docs/*.md points at an existing file, and every
      `FILE.md#anchor` anywhere points at a heading of that file.
  (c) Every dotted name of the library in README.md and docs/*.md (`task_discovery.x.y`, and
      code spans such as `method.meta.make_meta_loss` or `models.build_models`) resolves to a
      module or an attribute.
  (d) Every config field named there (`--config.a.b=...`, `config.a.b`, and code spans such as
      `inner.num_steps` that start with a config section) exists in `config.base()`. Config files
      add no fields of their own (checked below), so `base()` is the schema for all of them.

Cheap: files are read as text, the package is imported but nothing runs. Each checker is also
run on made-up text that breaks its rule, so a checker that stopped finding anything fails here.
"""
import ast
import functools
import importlib
import os
import pathlib
import re
import subprocess

import pytest

from task_discovery import config as config_lib

REPO = pathlib.Path(__file__).resolve().parent.parent
PACKAGE = "task_discovery"

# Spelled in pieces so that this file does not match its own patterns.
_SHARED = r"\.\./" + "shared" + r"\b"
_SPEC_DOC = r"\b" + "SP" + r"EC(?:\.md)?\b"
OUTSIDE_PATTERNS = {
    "a path into a sibling 'shared' folder": re.compile(_SHARED),
    "a citation of a specification document outside the repository": re.compile(_SPEC_DOC),
}
OUTSIDE_EXEMPT = {"LICENSE"}  # the license text is quoted verbatim
THIS_FILE = "tests/test_docs.py"  # its made-up examples of broken references are not references

DATA_SUFFIXES = {"png", "jpg", "npz", "npy", "gz", "pdf"}
# Dotted code spans that end like a file name are files, not Python names (`tasks.npz`).
FILE_SUFFIXES = {"npz", "npy", "csv", "json", "jsonl", "png", "md", "py", "yaml", "txt", "cff",
                 "toml", "ipynb", "gz", "pt", "pth", "sh"}

# Code spans that look like `module.name` of the library but name something else. Each entry
# says what it is; keep the list short.
NOT_PYTHON_NAMES = {
    # keys of report.json (docs/workdir.md), whose first part is also a module's name
    "similarity.mean_folded_agreement",
}
# Placeholders that stand for any field in the docs' prose (README: `--config.section.field=value`).
PLACEHOLDER_FIELDS = {"section.field"}


# ---------------------------------------------------------------------------------- the files


@functools.cache
def repository_files() -> tuple[str, ...]:
  """Paths of the repository's files: tracked, or new and not ignored."""
  try:
    out = subprocess.run(["git", "ls-files", "--cached", "--others", "--exclude-standard"],
                         cwd=REPO, capture_output=True, text=True, check=True).stdout
  except (OSError, subprocess.CalledProcessError) as e:
    pytest.skip(f"git ls-files failed ({e}): not a git checkout")
  return tuple(sorted(p for p in set(out.splitlines()) if (REPO / p).is_file()))


def read_text(path: str) -> str | None:
  """The file's text, or None for a binary file."""
  if path.rsplit(".", 1)[-1].lower() in DATA_SUFFIXES:
    return None
  data = (REPO / path).read_bytes()
  if b"\0" in data:
    return None
  return data.decode("utf-8", errors="replace")


def docs_files() -> list[str]:
  return ["README.md"] + sorted(p for p in repository_files()
                                if p.startswith("docs/") and p.endswith(".md"))


def docstring_files() -> list[str]:
  return sorted(p for p in repository_files()
                if re.fullmatch(r"(configs|experiments)/[^/]+\.py", p))


def module_docstring(path: str) -> str:
  return ast.get_docstring(ast.parse((REPO / path).read_text())) or ""


def documentation() -> dict[str, str]:
  """{path: text} of README.md, docs/*.md and the docstrings of configs and experiments."""
  texts = {p: (REPO / p).read_text() for p in docs_files()}
  texts.update({p: module_docstring(p) for p in docstring_files()})
  return texts


# ------------------------------------------------------------------------------- the checkers


def outside_references(text: str) -> list[str]:
  """What in `text` points outside the repository: `line N: <what> (<match>)`."""
  found = []
  for number, line in enumerate(text.splitlines(), start=1):
    for what, pattern in OUTSIDE_PATTERNS.items():
      for match in pattern.finditer(line):
        found.append(f"line {number}: {what} ({match.group(0)!r} in {line.strip()!r})")
  return found


# `task_discovery/...py`, `configs/x.py`, `experiments/x.py`, `benchmarks/x.py`, `docs/x.md`,
# not inside a longer path (`runs/docs/x.md`) or a URL.
REPO_PATH = re.compile(r"(?<![\w/.-])((?:task_discovery/[\w/]+\.py)|(?:(?:configs|experiments|"
                       r"benchmarks)/[\w.-]+\.py)|(?:docs/[\w.-]+\.md))")
# `method/meta.py`: package-relative module paths.
PACKAGE_PATH = re.compile(r"(?<![\w/.-])((?:config|run|data|method|models|jobs)/[\w/]+\.py)")


def missing_paths(text: str, root: pathlib.Path = REPO) -> list[str]:
  """Repository paths named in `text` that do not exist under `root`."""
  missing = [p for p in REPO_PATH.findall(text) if not (root / p).is_file()]
  missing += [p for p in PACKAGE_PATH.findall(text) if not (root / PACKAGE / p).is_file()]
  return sorted(set(missing))


MARKDOWN_LINK = re.compile(r"\[[^\]]*\]\(([^)\s]+)\)")


def broken_links(text: str, directory: pathlib.Path) -> list[str]:
  """Relative Markdown links of `text` (a file in `directory`) whose file does not exist."""
  broken = []
  for target in MARKDOWN_LINK.findall(text):
    if re.match(r"[a-z]+:", target) or target.startswith("#"):
      continue  # URLs; anchors of the same file are checked by `broken_anchors`
    path = target.split("#", 1)[0]
    if not (directory / path).exists():
      broken.append(target)
  return broken


def heading_anchors(markdown: str) -> set[str]:
  """The anchors GitHub makes of a Markdown file's headings."""
  anchors = set()
  in_code = False
  for line in markdown.splitlines():
    if line.startswith("```"):
      in_code = not in_code
    match = None if in_code else re.match(r"#{1,6}\s+(.*?)\s*#*\s*$", line)
    if match:
      slug = re.sub(r"[^\w\- ]", "", match.group(1).strip().lower()).replace(" ", "-")
      anchors.add(slug)
  return anchors


ANCHOR_REF = re.compile(r"([\w./-]*\.md)#([\w-]+)")


def broken_anchors(text: str, directory: pathlib.Path, root: pathlib.Path = REPO) -> list[str]:
  """`FILE.md#anchor` references of `text` (a file in `directory`) whose file or heading is
  missing. FILE is taken relative to `directory`, else to the repository root."""
  broken = []
  for name, anchor in ANCHOR_REF.findall(text):
    target = next((p for p in (directory / name, root / name) if p.is_file()), None)
    if target is None or anchor not in heading_anchors(target.read_text()):
      broken.append(f"{name}#{anchor}")
  return sorted(set(broken))


@functools.cache
def config_fields() -> frozenset[str]:
  """Every field path of `config.base()`, sections included (`inner`, `inner.num_steps`)."""
  def walk(c, prefix=""):
    for key, value in c.items():
      yield prefix + key
      if hasattr(value, "items"):
        yield from walk(value, f"{prefix}{key}.")
  return frozenset(walk(config_lib.base()))


def config_sections() -> set[str]:
  return {f for f in config_fields() if "." not in f and hasattr(config_lib.base()[f], "items")}


@functools.cache
def library_namespaces() -> tuple[str, ...]:
  """Where a short dotted name may start: the package and each of its subpackages."""
  subpackages = sorted(p.parent.name for p in (REPO / PACKAGE).glob("*/__init__.py"))
  return (PACKAGE,) + tuple(f"{PACKAGE}.{s}" for s in subpackages)


@functools.cache
def library_module_names() -> frozenset[str]:
  """Names of the package's modules and subpackages (`meta`, `method`, `config`, ...)."""
  names = {p.stem for p in (REPO / PACKAGE).rglob("*.py") if p.stem != "__init__"}
  names |= {p.parent.name for p in (REPO / PACKAGE).rglob("__init__.py")}
  return frozenset(names - {PACKAGE})


def resolves(dotted: str) -> bool:
  """Whether `dotted` names a module or attribute under one of `library_namespaces()`."""
  for namespace in library_namespaces():
    name = dotted if dotted.split(".")[0] == PACKAGE else f"{namespace}.{dotted}"
    parts = name.split(".")
    for split in range(len(parts), 0, -1):  # the longest importable prefix, then attributes
      try:
        obj = importlib.import_module(".".join(parts[:split]))
      except ImportError:
        continue
      for attribute in parts[split:]:
        obj = getattr(obj, attribute, None)
        if obj is None:
          break
      if obj is not None:
        return True
      break
  return False


CODE_SPAN = re.compile(r"`([^`\n]+)`")
DOTTED = re.compile(r"[A-Za-z_]\w*(?:\.[A-Za-z_]\w*)+")
QUALIFIED = re.compile(r"(?<![\w.])" + PACKAGE + r"(?:\.[A-Za-z_]\w*)+")
OVERRIDE = re.compile(r"--config\.([\w.]+)=")
CONFIG_FIELD = re.compile(r"(?<![\w.-])config\.([a-z_]\w*(?:\.[a-z_]\w*)*)")


def unresolved_names(text: str) -> list[str]:
  """Dotted names of the library in `text` that name neither a module or attribute nor a
  config field: `task_discovery.x.y` anywhere, and code spans whose first part is a module of
  the library or a config section."""
  candidates = set(QUALIFIED.findall(text))
  sections = config_sections()
  for span in CODE_SPAN.findall(text):
    span = span.strip().removesuffix("()")
    if not DOTTED.fullmatch(span) or span in NOT_PYTHON_NAMES:
      continue
    head, last = span.split(".")[0], span.split(".")[-1]
    if last in FILE_SUFFIXES:
      continue
    if head in library_module_names() or head in sections:
      candidates.add(span)
  bad = []
  for name in sorted(candidates):
    field = name.removeprefix("config.")
    if name.split(".")[0] in sections and field in config_fields():
      continue
    if name.startswith("config.") and field in config_fields():
      continue
    if not resolves(name):
      bad.append(name)
  return bad


def unknown_config_fields(text: str) -> list[str]:
  """`--config.a.b=` overrides and `config.a.b` fields of `text` missing from `config.base()`
  (`config.x` that names a function or constant of the `config` module is fine)."""
  bad = set()
  for field in OVERRIDE.findall(text):
    if field not in config_fields() and field not in PLACEHOLDER_FIELDS:
      bad.add(f"--config.{field}")
  for field in CONFIG_FIELD.findall(text):
    if field in config_fields() or field in PLACEHOLDER_FIELDS or field in FILE_SUFFIXES:
      continue  # a field, a placeholder, or the file config.py
    if not hasattr(config_lib, field.split(".")[0]):
      bad.add(f"config.{field}")
  return sorted(bad)


# ------------------------------------------------------------------------- the repository


def test_no_file_points_outside_the_repository():
  found = {}
  for path in repository_files():
    if path in OUTSIDE_EXEMPT:
      continue
    text = read_text(path)
    if text is not None and (hits := outside_references(text)):
      found[path] = hits
  assert not found, "\n".join(f"{p}: {h}" for p, hits in found.items() for h in hits)


def test_named_paths_exist():
  missing = {p: m for p, text in documentation().items() if (m := missing_paths(text))}
  assert not missing, missing


def test_markdown_links_and_anchors_resolve():
  broken = {}
  for path in docs_files():
    text = (REPO / path).read_text()
    if found := broken_links(text, (REPO / path).parent):
      broken[path] = found
  for path in repository_files():
    text = None if path == THIS_FILE else read_text(path)
    if text is not None and (found := broken_anchors(text, (REPO / path).parent)):
      broken.setdefault(path, []).extend(found)
  assert not broken, broken


def test_dotted_names_resolve():
  bad = {p: b for p in docs_files() if (b := unresolved_names((REPO / p).read_text()))}
  assert not bad, bad


def test_config_fields_exist():
  bad = {p: b for p, text in documentation().items() if (b := unknown_config_fields(text))}
  assert not bad, bad


def test_config_files_add_no_fields_to_the_base_config():
  """Why (d) checks against `base()` alone."""
  def walk(c, prefix=""):
    for key, value in c.items():
      yield prefix + key
      if hasattr(value, "items"):
        yield from walk(value, f"{prefix}{key}.")
  for path in sorted((REPO / "configs").glob("*.py")):
    fields = set(walk(config_lib.load_config_file(str(path))))
    assert fields <= config_fields(), (path.name, sorted(fields - config_fields()))


# -------------------------------------------------------- the checkers find what they should


def test_outside_references_are_found():
  assert outside_references("see ../" + "shared/peer/README.md")
  assert outside_references("Tasks (" + "SP" + "EC section 1).")
  assert outside_references("as in " + "SP" + "EC §4")
  assert not outside_references("--workdir=/shared/run on a shared filesystem; importlib spec")


def test_missing_paths_are_found():
  text = ("configs/digits.py, task_discovery/method/meta.py, method/meta.py, docs/method.md, "
          "runs/docs/x.md, https://example.org/configs/x.py")
  assert missing_paths(text) == []
  assert missing_paths("configs/nope.py and method/nope.py and docs/nope.md") == [
      "configs/nope.py", "docs/nope.md", "method/nope.py"]


def test_broken_links_and_anchors_are_found(tmp_path):
  (tmp_path / "a.md").write_text("# Title\n\n## The agreement score\n\n```\n# not a heading\n```\n")
  assert heading_anchors((tmp_path / "a.md").read_text()) == {"title", "the-agreement-score"}
  text = "[ok](a.md), [bad](b.md), a.md#the-agreement-score, a.md#not-a-heading, c.md#x"
  assert broken_links(text, tmp_path) == ["b.md"]
  assert broken_anchors(text, tmp_path, root=tmp_path) == ["a.md#not-a-heading", "c.md#x"]


def test_unresolved_names_are_found():
  good = ("`task_discovery.load`, `method.meta.make_meta_loss`, `models.build_models`, "
          "`config.base()`, `inner.num_steps`, `data.splits`, `tasks.npz`, `jax.lax.scan`")
  assert unresolved_names(good) == []
  bad = "task_discovery.nope, `method.meta.nope`, `inner.nope`, `models.nope()`"
  assert unresolved_names(bad) == ["inner.nope", "method.meta.nope", "models.nope",
                                   "task_discovery.nope"]


def test_unknown_config_fields_are_found():
  assert unknown_config_fields("--config.inner.num_steps=3 config.task.encoder.name "
                               "config.base() config.seed, config.py") == []
  assert unknown_config_fields("--config.inner.nope=1 and config.meta.nope") == [
      "--config.inner.nope", "config.meta.nope"]
