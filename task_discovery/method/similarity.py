"""Similarity between tasks: folded agreement and adjusted mutual information
(docs/method.md#measuring-discovered-tasks)."""

from __future__ import annotations

import numpy as np
from sklearn import metrics as sk_metrics


def folded_agreement(labels_a: np.ndarray, labels_b: np.ndarray | None = None) -> np.ndarray:
  """Pairwise agreement of binary labellings folded as max(s, 1 - s): 0.5 = unrelated, 1 = same
  task up to renaming the labels.

  Args:
    labels_a: `[Ta, N]` binary labels.
    labels_b: `[Tb, N]` binary labels (default: labels_a).

  Returns:
    `[Ta, Tb]` matrix.
  """
  a = np.asarray(labels_a, dtype=np.float64)
  b = a if labels_b is None else np.asarray(labels_b, dtype=np.float64)
  n = a.shape[1]
  same = (a @ b.T + (1 - a) @ (1 - b).T) / n
  return np.maximum(same, 1 - same)


def adjusted_mutual_information(labels_a: np.ndarray, labels_b: np.ndarray | None = None
                                ) -> np.ndarray:
  """`[Ta, Tb]` adjusted mutual information between labellings (0 = independent, 1 = equal)."""
  b = labels_a if labels_b is None else labels_b
  return np.asarray([[sk_metrics.adjusted_mutual_info_score(x, y) for y in b] for x in labels_a])


def off_diagonal_mean(matrix: np.ndarray) -> float:
  """Mean of the entries off the diagonal of a square matrix (nan for 1x1)."""
  k = matrix.shape[0]
  if k < 2:
    return float("nan")
  return float((matrix.sum() - np.trace(matrix)) / (k * k - k))


def summary(labels: np.ndarray) -> tuple[dict, np.ndarray, np.ndarray]:
  """Similarity section of `report.json` for a set of tasks, and its two matrices."""
  folded = folded_agreement(labels)
  ami = adjusted_mutual_information(labels)
  upper = folded[np.triu_indices(len(labels), k=1)]
  return ({
      "mean_folded_agreement": off_diagonal_mean(folded),
      "max_folded_agreement": float(upper.max()) if upper.size else float("nan"),
      "mean_adjusted_mutual_information": off_diagonal_mean(ami),
      "num_tasks": int(len(labels)),
  }, folded, ami)
