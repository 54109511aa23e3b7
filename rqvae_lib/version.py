"""The library's version, in a module of its own: saved configs record it, and every layer can
read it without importing the package's ``__init__``."""

__version__ = "0.1.0"
