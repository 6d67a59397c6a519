"""Artifact folders on disk: staged and atomically published, manifests read defensively, one run per folder."""
