"""Origin-destination commuting flows from region features and imagery (Imagery2Flow, Xu et al. 2025)."""
