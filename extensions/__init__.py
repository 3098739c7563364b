"""Bundled extensions, and beside them whatever users install.

Every bundled feature is an ordinary extension: it imports ``plugin_api`` only, never
``core`` or ``ui``, and is loaded through the same manager as user extensions. The
names of the bundled ones are listed in ``core.config.BUNDLED_EXTENSION_NAMES``.
"""
