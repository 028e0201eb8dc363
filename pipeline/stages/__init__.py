"""The pipeline's stages, one module each, named after the stage. A stage never imports another stage:
what two stages share lives in a helper module of ``pipeline``. The order they run in is in
``pipeline.registry``."""
