"""The method: the agreement score (the evaluation protocol and its differentiable form), the
learners' unrolled training, the meta-objective and meta-step, the gradient estimators, the
optimisers, and the similarity between tasks.

Builds on `models` and plumbing (`run`); the jobs build on it (`docs/architecture.md`).
"""
