"""What the run concludes from the methods' results: label probes and their baselines, the collection's
problems (near-duplicates, outliers), the backbone comparison, and the findings' rules in words."""
