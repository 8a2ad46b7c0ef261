"""Release tooling behind the invoke tasks: versions, tags, builds and deploys (not shipped in the image)."""
