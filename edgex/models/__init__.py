"""Model definitions built by edgex itself."""
