"""Population per grid cell from Sentinel-2 (Huang et al. 2021)."""
