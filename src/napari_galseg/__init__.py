"""napari-galseg: find and segment galaxies in survey-size FITS images."""
__version__ = "0.1.0"
