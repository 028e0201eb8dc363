"""The engine: stages declared as data, the runner that keys and caches them, the config, the run record.

Nothing here knows what an image is; it runs any stage list (tests/toy_stages.py runs toy ones).
"""
