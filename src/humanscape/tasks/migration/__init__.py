"""Municipal migration outflow from census tables and imagery: the social signature (Runfola et al. 2022)."""
