"""World coordinates under a pixel, formatted as astronomers read them (DS9 style)."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

__all__ = ["SkyPosition", "pixel_to_sky"]


@dataclass(frozen=True)
class SkyPosition:
    """A sky position: longitude/latitude in degrees plus sexagesimal text.

    ``lon_name``/``lat_name`` are ``RA``/``Dec`` for equatorial systems, ``l``/``b`` for galactic.
    """

    lon_deg: float
    lat_deg: float
    lon_name: str
    lat_name: str
    frame: str
    lon_text: str
    lat_text: str

    def to_string(self) -> str:
        return (f"{self.lon_name} {self.lon_text}  {self.lat_name} {self.lat_text}  "
                f"({self.lon_deg:.6f}°, {self.lat_deg:+.6f}°) {self.frame}")


def pixel_to_sky(wcs: Any, x: float, y: float) -> SkyPosition | None:
    """Sky position of 0-based pixel (x = column, y = row), or None where the WCS has no answer."""
    from astropy.coordinates import Angle

    if wcs is None:
        return None
    try:
        lon, lat = wcs.celestial.all_pix2world([[float(x), float(y)]], 0)[0]
    except Exception:  # outside a projection's valid region, or a broken distortion model
        return None
    if not (np.isfinite(lon) and np.isfinite(lat)):
        return None
    ctype = str(wcs.celestial.wcs.ctype[0]).upper()
    system = (str(getattr(wcs.celestial.wcs, "radesys", "")) or "ICRS").strip() or "ICRS"
    lon = float(lon) % 360.0
    if ctype.startswith("RA"):
        lon_text = Angle(lon, "deg").to_string(unit="hourangle", sep=":", precision=3, pad=True)
        lat_text = Angle(float(lat), "deg").to_string(unit="deg", sep=":", precision=2,
                                                      alwayssign=True, pad=True)
        return SkyPosition(lon, float(lat), "RA", "Dec", system, lon_text, lat_text)
    names = {"GLON": ("l", "b", "Galactic"), "ELON": ("λ", "β", "Ecliptic"),
             "SLON": ("SGL", "SGB", "Supergalactic")}
    lon_name, lat_name, frame = names.get(ctype[:4], (ctype[:4].rstrip("-"), "lat", ctype[:4]))
    return SkyPosition(lon, float(lat), lon_name, lat_name, frame, f"{lon:.5f}°", f"{float(lat):+.5f}°")
