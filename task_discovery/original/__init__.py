"""The original PyTorch code's artifacts in this library (docs/original.md): its checkpoints read
(`checkpoint`), its networks' weights in this library's layouts (`weights`), and a checkpoint
written as a workdir (`importer`, the command line `python -m task_discovery.import_original`)."""
