"""Pictures: the figures' shared style, the interactive map's data files, the mosaic, the class palette."""
