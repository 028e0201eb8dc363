"""embdeck's pipeline: images -> embeddings -> maps and analyses, as cached stages."""

__version__ = "0.1.0"

from .engine import codegraph as _codegraph

_codegraph.snapshot()  # the sources as this process loads them: what every stage key is computed from
