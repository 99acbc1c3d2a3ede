"""The error of data that is not on this machine, shared by the dataset readers."""


class DatasetNotFoundError(FileNotFoundError):
  """The requested data is not on this machine; the message says how to get it."""
