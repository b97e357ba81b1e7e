"""New informal settlements from Sentinel-2 time series (Tingzon et al. 2020)."""
