"""Images in: where they are (storage), reading and decoding them, the backbone and its weights, extraction
(local or on Ray), the exported model files, the ingest manifest."""
