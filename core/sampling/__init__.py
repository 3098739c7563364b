"""The one sampling loop for every model family, and its memory fallbacks."""
