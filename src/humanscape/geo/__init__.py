"""Geodata layer: sensors, rasters, composites, indices, grids and vectors."""
