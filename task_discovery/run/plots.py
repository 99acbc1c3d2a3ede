"""PNG figures of results.

Figures are built with matplotlib's object API (`matplotlib.figure.Figure`), not pyplot: no
global backend is chosen or changed, so this works headless and leaves a notebook's inline
backend alone. Every function writes its PNG and returns the Figure for display.
"""

from __future__ import annotations

import numpy as np
from matplotlib.figure import Figure

from task_discovery.run import workdir as workdir_lib


def _subplots(*args, **kwargs):
  fig = Figure(figsize=kwargs.pop("figsize"))
  axes = fig.subplots(*args, **kwargs)
  return fig, axes


def _save(fig: Figure, path: str, dpi: int = 120) -> Figure:
  """Writes the PNG atomically: a failed write keeps the previous figure."""
  with workdir_lib.atomic_write(path, "wb") as f:
    fig.savefig(f, dpi=dpi, format="png")
  return fig

FAMILY_COLORS = {"random": "tab:gray", "human": "tab:blue", "discovered": "tab:red",
                 "file": "tab:green"}


def agreement_histogram(per_family: dict[str, np.ndarray], path: str, title: str = "") -> Figure:
  """The AS per task family (the paper's central figure): a density histogram above, one strip
  of points per family below.

  Each family's histogram is a density (its area is 1), and the strips draw every task as a
  point with the family's mean as a bar, so a family of 4 tasks is as visible as one of 126
  (as counts, the few discovered tasks disappear behind the human ones in the same bin). The
  spread over seeds of each family's mean is `agreement_over_seeds`.
  """
  families = {f: np.asarray(v, dtype=float) for f, v in per_family.items() if np.size(v)}
  fig, (ax, strips) = _subplots(2, 1, figsize=(6, 3.5 + 0.35 * len(families)), sharex=True,
                                gridspec_kw={"height_ratios": [3, max(1, len(families)) * 0.6]})
  lowest = min([0.4] + [float(v.min()) for v in families.values()])
  low = np.floor(lowest * 20) / 20  # extend below 0.4 rather than drop a task
  bins = np.linspace(low, 1.0, int(round((1.0 - low) * 50)) + 1)
  jitter = np.random.default_rng(0)  # fixed: the same results draw the same figure
  for row, (family, values) in enumerate(families.items()):
    color = FAMILY_COLORS.get(family)
    ax.hist(values, bins=bins, density=True, alpha=0.6, color=color,
            label=f"{family} (n={values.size}, mean {values.mean():.3f})")
    strips.scatter(values, row + jitter.uniform(-0.2, 0.2, values.size), s=12, alpha=0.7,
                   color=color, edgecolors="none")
    strips.plot([values.mean()] * 2, [row - 0.35, row + 0.35], color=color, linewidth=2)
  ax.set_ylabel("density (area 1 per family)")
  ax.legend(loc="upper left", fontsize=8)
  ax.set_title(title or "Agreement score per task family")
  strips.set_yticks(range(len(families)), list(families))
  strips.set_ylim(-0.6, len(families) - 0.4)
  strips.set_xlabel("agreement score (points: tasks; bars: family means)")
  strips.set_xlim(low, 1.005)  # a task at AS 1 stays a whole point
  fig.tight_layout()
  return _save(fig, path)


def similarity_heatmap(matrix: np.ndarray, path: str, title: str) -> Figure:
  """Heatmap of a square task-by-task similarity matrix with values in [0.5, 1]."""
  fig, ax = _subplots(figsize=(5, 4.2))
  im = ax.imshow(matrix, vmin=0.5, vmax=1.0, cmap="viridis")
  fig.colorbar(im, ax=ax)
  ax.set_xlabel("task")
  ax.set_ylabel("task")
  ax.set_title(title, fontsize=10)
  fig.tight_layout()
  return _save(fig, path)


def task_image_sheet(raw_images: np.ndarray, scores: np.ndarray, path: str,
                     per_side: int = 8, title: str = "",
                     agreement: np.ndarray | None = None) -> Figure:
  """One row per task: the images with the most negative score (label 0, left) and the most
  positive score (label 1, right), with the task's AS in the middle column if given.

  Args:
    raw_images: `[N, H, W, C]` images in [0, 1].
    scores: `[num_tasks, N]` projections <w_i, h(x)>; label 1 iff score > 0.
    path: output PNG.
    per_side: images shown per side.
    title: the figure's title (default: what the two sides are).
    agreement: `[num_tasks]` AS of each task under the evaluation protocol, or None.
  """
  return task_sheets_side_by_side(raw_images, {"": (scores, agreement)}, path,
                                  per_side=per_side, title=title)


def task_sheets_side_by_side(raw_images: np.ndarray, panels: dict, path: str,
                             per_side: int = 4, title: str = "") -> Figure:
  """The discovered tasks of several runs beside each other, one panel per run: per task its
  `per_side` most confident images of class 0 (left) and of class 1 (right), its AS between.

  `panels`: `{label: (scores [d, N], agreement [d] or None)}` over the same `raw_images`.
  """
  num_rows = max(s.shape[0] for s, _ in panels.values())
  cols_per = 2 * per_side + 1
  cols = len(panels) * cols_per + len(panels) - 1  # an empty column between panels
  fig, axes = _subplots(num_rows, cols, figsize=(cols * 0.6, num_rows * 0.65 + 0.55),
                        squeeze=False)
  cmap = "gray" if raw_images.shape[-1] == 1 else None
  for ax in axes.ravel():
    ax.axis("off")
  for p, (label, (scores, agreement)) in enumerate(panels.items()):
    first = p * (cols_per + 1)
    if label:
      axes[0, first + per_side].set_title(label, fontsize=8)
    for t in range(scores.shape[0]):
      order = np.argsort(scores[t])
      chosen = list(order[:per_side]) + [None] + list(order[::-1][:per_side])
      for c, idx in enumerate(chosen):
        ax = axes[t, first + c]
        if idx is None:
          text = f"task {t}" if agreement is None else f"task {t}\nAS {agreement[t]:.3f}"
          ax.text(0.5, 0.5, text, ha="center", va="center", fontsize=6)
          continue
        img = np.clip(raw_images[idx], 0, 1)
        ax.imshow(img[..., 0] if cmap else img, cmap=cmap, interpolation="nearest")
  sides = ("per panel, " if len(panels) > 1 else "") + \
      "class 0: most confident  |  class 1: most confident"
  fig.suptitle(f"{title}\n{sides}" if title else sides, fontsize=8)
  fig.tight_layout(pad=0.1)
  return _save(fig, path, dpi=100)


def grouped_bars(groups: list[str], series: dict[str, np.ndarray], path: str, ylabel: str,
                 title: str, intervals: dict[str, list] | None = None) -> Figure:
  """Grouped bar chart: one group per entry of `groups`, one bar per series.

  `intervals`, if given: `{series: [(low, high) or None per group]}`, drawn as error bars (e.g.
  the 95% interval over seeds of a bar that shows a mean over seeds).
  """
  fig, ax = _subplots(figsize=(max(7, 0.6 * len(groups) + 2), 4))
  width = 0.8 / max(1, len(series))
  x = np.arange(len(groups))
  for i, (name, values) in enumerate(series.items()):
    pos = x + i * width - 0.4 + width / 2
    ax.bar(pos, values, width=width, label=name)
    for j, ci in enumerate((intervals or {}).get(name, [])):
      if ci is not None and np.isfinite(values[j]):
        ax.errorbar([pos[j]], [values[j]], yerr=[[values[j] - ci[0]], [ci[1] - values[j]]],
                    fmt="none", ecolor="black", capsize=3, lw=1)
  ax.set_xticks(x)
  ax.set_xticklabels(groups, rotation=45, ha="right", fontsize=7)
  ax.set_ylabel(ylabel)
  ax.set_ylim(0, 1.25)  # room for the legend above bars that reach 1
  ax.legend(fontsize=8, loc="upper right", ncol=min(2, len(series)))
  ax.set_title(title, fontsize=10)
  fig.tight_layout()
  return _save(fig, path)


def agreement_over_seeds(per_family: dict[str, list[float]], path: str, seeds=None,
                         title: str = "", intervals: dict | None = None) -> Figure:
  """Mean AS per task family over seeds: one dot per seed, the mean, and its 95% t-interval.

  Args:
    per_family: `{family: [mean AS of each seed]}` (same seed order in every family).
    path: output PNG.
    seeds: the seeds, for the legend.
    intervals: `{family: (low, high) or None}`, the interval of each family's mean
      (`seeds.spread(values)["ci95"]`); a family without one shows its mean alone.
  """
  # The caller computes the interval (as for `grouped_bars`): figures draw numbers and compute
  # no statistics, so this module needs nothing of the library but the atomic write.
  fig, ax = _subplots(figsize=(5.5, 3.5))
  for x, (family, values) in enumerate(per_family.items()):
    mean = float(np.mean(np.asarray(values, dtype=np.float64)))
    ci = (intervals or {}).get(family)
    color = FAMILY_COLORS.get(family)
    ax.scatter(np.full(len(values), x) + np.linspace(-0.12, 0.12, len(values)), values, s=14,
               color=color, alpha=0.7)
    if ci is not None:
      low, high = ci
      ax.errorbar([x + 0.25], [mean], yerr=[[mean - low], [high - mean]],
                  fmt="o", color=color, capsize=4)
    else:
      ax.plot([x + 0.25], [mean], "o", color=color)
  ax.set_xticks(range(len(per_family)))
  ax.set_xticklabels(list(per_family))
  ax.set_ylabel("mean AS of the family")
  n = len(next(iter(per_family.values()), []))
  seed_text = f"seeds {', '.join(map(str, seeds))}" if seeds is not None else f"{n} seeds"
  ax.set_title(title or f"Agreement score per family over {seed_text}\n(dots: seeds; "
               "bar: mean and 95% t-interval)", fontsize=9)
  fig.tight_layout()
  return _save(fig, path)
