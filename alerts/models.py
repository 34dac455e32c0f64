"""Alert pipeline models (to be filled by the pipeline work)."""
