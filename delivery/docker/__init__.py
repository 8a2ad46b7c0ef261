"""The only code that runs the docker CLI: engines, their facts and their errors."""
