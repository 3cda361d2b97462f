"""Synthetic knee radiograph generator and model training."""
