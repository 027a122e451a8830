"""Forecasters, training, evaluation."""
