"""``make bench``: embdeck's speed, side by side with named references, as ratios and fractions of a peak."""
