"""A release: what its pull downloads, predicted and measured."""
