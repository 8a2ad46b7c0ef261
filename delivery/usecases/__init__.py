"""The runbooks the invoke tasks call."""
