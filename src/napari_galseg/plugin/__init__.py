"""napari-facing hooks (reader, writer, sample data) that return layer data; no Qt here."""
