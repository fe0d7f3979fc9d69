"""recoque: measure a GPU node, plan capacity on it."""
__version__ = "0.1.0"
