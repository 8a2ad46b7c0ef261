"""The two images: names and versions, build plans, the builder, BuildKit progress, the base."""
