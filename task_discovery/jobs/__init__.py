"""The jobs of `main` (`config.job`), each a function of (config, workdir): `discover`
(`discovery.train_and_evaluate`), `agreement` (`evaluation.run`) and `adversarial_split`
(`adversarial.run`).

The top layer of the library below the entry points (`docs/architecture.md`).
"""
