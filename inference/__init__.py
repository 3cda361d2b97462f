"""Landmark scheme, alignment geometry, networks and the predictor (runs without any queue)."""
