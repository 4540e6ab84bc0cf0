"""Thin magicgui/Qt widgets: the only package that imports napari or Qt."""
