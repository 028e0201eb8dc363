"""embdeck's pipeline: images -> embeddings -> maps and analyses, as cached stages."""

__version__ = "0.1.0"
