"""Model files, listing and loading (``ModelManager``)."""

from core.models.manager import LoadedModel, ModelInfo, ModelManager

__all__ = ["LoadedModel", "ModelInfo", "ModelManager"]
