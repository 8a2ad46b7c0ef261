"""The two images: names and versions, build plans and builds, publishing them, the builder, BuildKit progress, the base."""
