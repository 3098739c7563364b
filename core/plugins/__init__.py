"""The extension host: discovery, loading, isolated hook dispatch, installation."""
