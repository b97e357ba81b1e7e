"""District economic indicators from hyperlocal tile scores (Park et al. 2022)."""
