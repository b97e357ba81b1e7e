"""Data: chip tables, splits, shipped real samples and the synthetic world."""
