"""A corpus of malformed and unusual FITS inputs, generated on the fly, with what each should give.

Each :class:`Case` is a path plus the truth about it: ``expected`` is the 2-D array a correct
reader returns (None when the file must be refused with one clear line), ``labels_ok`` says
whether ``galseg evaluate`` may score it as a label map (whether it may serve as a noise map
follows from its values). Used by ``test_bad_input_corpus.py`` to run every case through every entry point.
"""
from __future__ import annotations

import gzip
import io
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

SHAPE = (48, 64)
BLOCK = 2880


@dataclass
class Case:
    name: str
    path: Path
    expected: np.ndarray | None  # None: must be refused
    labels_ok: bool = False
    warns: bool = False  # opens, but with a warning

    def __repr__(self) -> str:
        return self.name


def _card(key: str, value: str = "", comment: str = "") -> bytes:
    if key == "END":
        text = "END"
    elif value == "":
        text = key
    else:
        text = f"{key:<8}= {value:>20}" + (f" / {comment}" if comment else "")
    return text.ljust(80)[:80].encode("latin-1")


def _header(cards: list[tuple[str, str]], end: bool = True) -> bytes:
    raw = b"".join(_card(k, v) for k, v in cards) + (_card("END") if end else b"")
    return raw + b" " * (-len(raw) % BLOCK)


def _image_cards(bitpix: int, shape: tuple[int, ...], extra=()) -> list[tuple[str, str]]:
    cards = [("SIMPLE", "T"), ("BITPIX", str(bitpix)), ("NAXIS", str(len(shape)))]
    cards += [(f"NAXIS{i + 1}", str(n)) for i, n in enumerate(reversed(shape))]
    return cards + list(extra)


_DTYPES = {8: ">u1", 16: ">i2", 32: ">i4", 64: ">i8", -32: ">f4", -64: ">f8"}


def _data_bytes(data: np.ndarray, bitpix: int, pad: bool = True) -> bytes:
    raw = np.ascontiguousarray(data, dtype=_DTYPES[bitpix]).tobytes()
    return raw + (b"\0" * (-len(raw) % BLOCK) if pad else b"")


def _raw_fits(bitpix: int, data: np.ndarray, extra=(), pad: bool = True) -> bytes:
    return _header(_image_cards(bitpix, data.shape, extra)) + _data_bytes(data, bitpix, pad)


def _science(rng, dtype=np.float32) -> np.ndarray:
    return (100.0 + 10.0 * rng.standard_normal(SHAPE)).astype(dtype)


def _labels(rng) -> np.ndarray:
    out = np.zeros(SHAPE, np.int32)
    for i, (y, x) in enumerate([(10, 10), (30, 40), (20, 55), (40, 15)], start=1):
        out[max(0, y - 4):y + 4, max(0, x - 5):x + 5] = i
    return out


def build_corpus(folder: Path) -> list[Case]:
    """Write the corpus into ``folder`` and return its cases (≥ 100)."""
    from astropy.io import fits

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(12)
    cases: list[Case] = []

    def add(name: str, content: bytes | None, expected, *, suffix=".fits", **kw) -> Path:
        path = folder / f"{name}{suffix}"
        if content is not None:
            path.write_bytes(content)
        cases.append(Case(name, path, None if expected is None else np.asarray(expected), **kw))
        return path

    good = _science(rng)
    good_bytes = _raw_fits(-32, good)
    labels = _labels(rng)
    rms = np.full(SHAPE, 2.0, np.float32)

    # --- good references (they must open with the right values) -------------------------------
    add("good_float32", good_bytes, good)
    add("good_labels_int32", _raw_fits(32, labels, [("EXTNAME", "'LABELS'")]), labels, labels_ok=True)
    add("good_rms", _raw_fits(-32, rms), rms)

    # --- truncations at every part ------------------------------------------------------------
    header_len = BLOCK
    for cut in (1, 10, 79, 80, 1000, 2879, header_len, header_len + 1, header_len + 4000,
                header_len + good.size * 4 - 1):
        add(f"trunc_at_{cut}", good_bytes[:cut], None)
    # complete data without the final padding: astropy reads it (with a warning), so do we
    add("no_final_padding", good_bytes[:header_len + good.size * 4], good, warns=True)
    add("partial_final_padding", good_bytes[:header_len + good.size * 4 + 5], good, warns=True)
    add("missing_end_card", _header(_image_cards(-32, SHAPE), end=False) + _data_bytes(good, -32), None)

    # MEF: damage in the second HDU
    mef = fits.HDUList([fits.PrimaryHDU(), fits.ImageHDU(good, name="SCI"), fits.ImageHDU(rms, name="RMS2")])
    mef_path = folder / "_mef_tmp.fits"
    mef.writeto(mef_path)
    mef_bytes = mef_path.read_bytes()
    mef_path.unlink()
    add("mef_good", mef_bytes, good)
    add("mef_trunc_in_second_header", mef_bytes[:BLOCK + 100], None)
    add("mef_trunc_in_second_data", mef_bytes[:2 * BLOCK + 3000], None)
    add("mef_trunc_in_third_header", mef_bytes[:len(mef_bytes) - len(_data_bytes(rms, -32)) - 2000], None)

    # --- wrong and missing cards ----------------------------------------------------------------
    data = _data_bytes(good, -32)

    def with_cards(cards):
        return _header(cards) + data

    add("simple_false", with_cards([("SIMPLE", "F")] + _image_cards(-32, SHAPE)[1:]), None)
    add("no_simple", with_cards(_image_cards(-32, SHAPE)[1:]), None)
    add("no_bitpix", with_cards([c for c in _image_cards(-32, SHAPE) if c[0] != "BITPIX"]), None)
    add("bitpix_7", with_cards(_image_cards(7, SHAPE)), None)
    add("bitpix_text", with_cards([("SIMPLE", "T"), ("BITPIX", "'float'")] + _image_cards(-32, SHAPE)[2:]), None)
    add("no_naxis", with_cards([c for c in _image_cards(-32, SHAPE) if c[0] != "NAXIS"]), None)
    add("no_naxis2", with_cards([c for c in _image_cards(-32, SHAPE) if c[0] != "NAXIS2"]), None)
    add("naxis1_negative", with_cards([("NAXIS1", "-64") if k == "NAXIS1" else (k, v) for k, v in _image_cards(-32, SHAPE)]), None)
    add("naxis1_text", with_cards([("NAXIS1", "'sixty'") if k == "NAXIS1" else (k, v) for k, v in _image_cards(-32, SHAPE)]), None)
    add("naxis2_huge", with_cards([("NAXIS2", "48000000") if k == "NAXIS2" else (k, v) for k, v in _image_cards(-32, SHAPE)]), None)
    bad_string = _header(_image_cards(-32, SHAPE)).replace(_card("END"), b"OBJECT  = 'M31 without a closing quote".ljust(80) + _card("END"), 1)
    add("unterminated_string", bad_string[:BLOCK] + data, good, warns=True)
    unterminated_ext = _header(_image_cards(-32, SHAPE, [("EXTNAME", "'SCI")]))
    add("unterminated_extname", unterminated_ext + data, good, warns=True)
    nonascii = _header(_image_cards(-32, SHAPE, [("OBJECT", "'M31'")])).replace(b"M31", b"M\xe931")
    add("non_ascii_header", nonascii + data, None)
    add("bscale_text_int16", _raw_fits(16, np.arange(np.prod(SHAPE)).reshape(SHAPE) % 300,
                                       [("BSCALE", "'abc'")]), None)
    add("bzero_text_int16", _raw_fits(16, np.arange(np.prod(SHAPE)).reshape(SHAPE) % 300,
                                      [("BZERO", "'x'")]), None)
    add("bscale_zero_int16", _raw_fits(16, np.arange(np.prod(SHAPE)).reshape(SHAPE) % 300,
                                       [("BSCALE", "0.0")]), None)
    add("blank_text_int16", _raw_fits(16, np.arange(np.prod(SHAPE)).reshape(SHAPE) % 300,
                                      [("BLANK", "'none'")]), None)
    add("blank_on_float", _raw_fits(-32, good, [("BLANK", "-999")]), good, warns=True)
    add("garbage_card", with_cards(_image_cards(-32, SHAPE) + [("B@D KEY", "1")]), good, warns=True)
    add("bad_wcs", with_cards(_image_cards(-32, SHAPE) + [("CTYPE1", "'RA---XXX'"), ("CTYPE2", "'DEC--XXX'"),
                                                          ("CRPIX1", "'a'"), ("CDELT1", "0")]), good)

    # --- every BITPIX with and without BSCALE/BZERO/BLANK --------------------------------------
    base = rng.integers(0, 120, SHAPE)
    for bitpix in (8, 16, 32, 64, -32, -64):
        raw = base.astype(_DTYPES[bitpix].replace(">", "<"))
        integer = bitpix > 0
        # plain: an integer science image (noise) is not a label map
        add(f"bitpix{bitpix}_plain", _raw_fits(bitpix, raw), raw, labels_ok=False)
        # BSCALE/BZERO: physical = BZERO + BSCALE * stored
        scaled = 10.0 + 0.5 * raw.astype(np.float64)
        add(f"bitpix{bitpix}_bscale", _raw_fits(bitpix, raw, [("BSCALE", "0.5"), ("BZERO", "10.0")]),
            scaled)
        if integer:
            blanked = raw.copy()
            blanked[:5, :5] = 255 if bitpix == 8 else -1
            exp = blanked.astype(np.float64)
            exp[:5, :5] = np.nan
            add(f"bitpix{bitpix}_blank", _raw_fits(bitpix, blanked, [("BLANK", "255" if bitpix == 8 else "-1")]), exp)
            exp_s = 10.0 + 0.5 * blanked.astype(np.float64)
            exp_s[:5, :5] = np.nan
            add(f"bitpix{bitpix}_blank_bscale", _raw_fits(bitpix, blanked, [("BLANK", "255" if bitpix == 8 else "-1"),
                                                                               ("BSCALE", "0.5"), ("BZERO", "10.0")]), exp_s)
    # unsigned conventions
    u16 = (base * 500).astype(np.uint16)
    add("uint16_bzero", _raw_fits(16, (u16.astype(np.int32) - 32768).astype(np.int16), [("BZERO", "32768")]), u16)
    u32 = (base.astype(np.uint32) * 40_000_000)
    add("uint32_bzero", _raw_fits(32, (u32.astype(np.int64) - 2**31).astype(np.int32), [("BZERO", "2147483648")]), u32)
    u16_blank = u16.copy()
    u16_blank[:3, :3] = 32767  # stored -1 = BLANK
    exp_u16 = u16_blank.astype(np.float64)
    exp_u16[:3, :3] = np.nan
    add("uint16_bzero_blank", _raw_fits(16, (u16_blank.astype(np.int32) - 32768).astype(np.int16),
                                        [("BZERO", "32768"), ("BLANK", "-1")]), exp_u16)
    blank16 = base.astype(np.int16)
    blank16[:5, :5] = -1
    exp16 = blank16.astype(np.float64)
    exp16[:5, :5] = np.nan
    add("gzip_int16_blank", gzip.compress(_raw_fits(16, blank16, [("BLANK", "-1")])), exp16, suffix=".fits.gz")
    i8 = (base - 60).astype(np.int8)
    add("int8_bzero", _raw_fits(8, (i8.astype(np.int16) + 128).astype(np.uint8), [("BZERO", "-128")]), i8)

    # --- values -------------------------------------------------------------------------------
    nan = np.full(SHAPE, np.nan, np.float32)
    add("all_nan", _raw_fits(-32, nan), None)
    add("all_inf", _raw_fits(-32, np.full(SHAPE, np.inf, np.float32)), None)
    add("all_nan_f64", _raw_fits(-64, nan.astype(np.float64)), None)
    part_nan = good.copy()
    part_nan[:, :20] = np.nan
    add("half_nan", _raw_fits(-32, part_nan), part_nan)
    add("constant", _raw_fits(-32, np.full(SHAPE, 5.0, np.float32)), np.full(SHAPE, 5.0, np.float32))
    add("all_zero_float", _raw_fits(-32, np.zeros(SHAPE, np.float32)), np.zeros(SHAPE, np.float32))
    big = np.full(SHAPE, 1e300) * (1 + rng.random(SHAPE))
    add("float64_above_float32_max", _raw_fits(-64, big), big)
    add("float64_tiny", _raw_fits(-64, np.full(SHAPE, 1e-310)), np.full(SHAPE, 1e-310))
    neg = -np.abs(good)
    add("all_negative", _raw_fits(-32, neg), neg)

    # --- shapes ---------------------------------------------------------------------------------
    add("one_d", _raw_fits(-32, good[0]), None)
    add("cube", _raw_fits(-32, np.stack([good, good])), None)
    add("cube_naxis3_1", _raw_fits(-32, good[None]), good)
    add("four_d", _raw_fits(-32, good[None, None]), good)
    add("four_d_real", _raw_fits(-32, np.stack([np.stack([good, good])] * 2)), None)
    add("primary_only", _header([("SIMPLE", "T"), ("BITPIX", "8"), ("NAXIS", "0")]), None)
    add("naxis1_zero", _header(_image_cards(-32, (48, 0))), None)
    one = np.array([[3.5]], np.float32)
    add("one_pixel", _raw_fits(-32, one), one)
    row = good[:1]
    add("one_row", _raw_fits(-32, row), row)

    # --- compression, good and damaged ------------------------------------------------------------
    ints = (base + 1000).astype(np.int32)
    for ctype in ("RICE_1", "GZIP_1", "GZIP_2", "PLIO_1", "HCOMPRESS_1"):
        source = ints if ctype == "PLIO_1" else good
        kwargs = {"quantize_level": 0.0} if source.dtype.kind == "f" and ctype != "HCOMPRESS_1" else {}
        hdu = fits.CompImageHDU(source, compression_type=ctype, tile_shape=(16, 64), **kwargs)
        comp_path = folder / f"_tmp_{ctype}.fits"
        fits.HDUList([fits.PrimaryHDU(), hdu]).writeto(comp_path, checksum=True)  # as fpack does
        comp = comp_path.read_bytes()
        comp_path.unlink()
        with fits.open(io.BytesIO(comp)) as hdul:
            reference = np.array(hdul[1].data)
        add(f"comp_{ctype}_good", comp, reference, suffix=".fz")
        # damage the heap (the compressed tiles) in its middle
        with fits.open(io.BytesIO(comp), disable_image_compression=True) as raw_hdul:
            table = raw_hdul[1]
            heap = table.fileinfo()["datLoc"] + table.header["NAXIS1"] * table.header["NAXIS2"]
            heap_size = table.header["PCOUNT"]
        damaged = bytearray(comp)
        for i in range(heap + heap_size // 4, heap + 3 * heap_size // 4):
            damaged[i] = (damaged[i] * 7 + 13) % 256
        add(f"comp_{ctype}_damaged_heap", bytes(damaged), None, suffix=".fz")
        if ctype == "RICE_1":  # without checksums the damage shows on the first read
            fits.HDUList([fits.PrimaryHDU(), fits.CompImageHDU(source, compression_type=ctype, tile_shape=(16, 64),
                                                               **kwargs)]).writeto(comp_path)
            plain = bytearray(comp_path.read_bytes())
            comp_path.unlink()
            plain[heap + heap_size // 4: heap + 3 * heap_size // 4] = damaged[heap + heap_size // 4: heap + 3 * heap_size // 4]
            add("comp_RICE_1_damaged_no_checksum", bytes(plain), None, suffix=".fz")
        add(f"comp_{ctype}_truncated", comp[:len(comp) - BLOCK - 100], None, suffix=".fz")
    gz = gzip.compress(good_bytes)
    add("gzip_good", gz, good, suffix=".fits.gz")
    add("gzip_truncated", gz[: len(gz) // 2], None, suffix=".fits.gz")
    add("gzip_damaged", gz[:20] + bytes(b ^ 0x55 for b in gz[20:200]) + gz[200:], None, suffix=".fits.gz")
    add("gzip_of_text", gzip.compress(b"hello world" * 100), None, suffix=".fits.gz")

    # --- tables only ---------------------------------------------------------------------------------
    table = fits.BinTableHDU.from_columns([fits.Column(name="flux", format="E", array=np.arange(5.0))])
    table_path = folder / "_tmp_table.fits"
    fits.HDUList([fits.PrimaryHDU(), table]).writeto(table_path)
    add("bintable_only", table_path.read_bytes(), None)
    table_path.unlink()
    ascii_table = fits.TableHDU.from_columns([fits.Column(name="a", format="E10.4", array=np.arange(3.0))])
    fits.HDUList([fits.PrimaryHDU(), ascii_table]).writeto(table_path)
    add("ascii_table_only", table_path.read_bytes(), None)
    table_path.unlink()
    groups = fits.GroupsHDU(fits.GroupData(np.zeros((3, 1, 2, 2), np.float32), parnames=["u"],
                                           pardata=[np.zeros(3, np.float32)], bitpix=-32))
    groups.writeto(table_path)
    add("random_groups", table_path.read_bytes(), None)
    table_path.unlink()

    # --- not FITS at all ----------------------------------------------------------------------------
    add("png_bytes", b"\x89PNG\r\n\x1a\n" + bytes(200), None)
    add("html_error_page", b"<!DOCTYPE html><html><body>404 Not Found</body></html>", None)
    add("text_file", b"hello, this is not an image\n" * 10, None)
    add("random_bytes", rng.integers(0, 256, 5000, dtype=np.uint8).tobytes(), None)
    add("empty_file", b"", None)
    add("simple_only", b"SIMPLE  =                    T".ljust(80), None)
    add("zip_garbage", b"PK\x03\x04" + bytes(100), None)
    add("bz2_garbage", b"BZh91AY&SY" + bytes(100), None)
    directory = folder / "a_directory.fits"
    directory.mkdir()
    cases.append(Case("directory", directory, None))
    broken = folder / "broken_link.fits"
    broken.symlink_to(folder / "does_not_exist.fits")
    cases.append(Case("broken_symlink", broken, None))
    cases.append(Case("missing_file", folder / "missing.fits", None))
    good_link = folder / "good_link.fits"
    good_link.symlink_to(folder / "good_float32.fits")
    cases.append(Case("symlink_to_good", good_link, good))
    fifo = folder / "a_fifo.fits"
    os.mkfifo(fifo)
    cases.append(Case("fifo", fifo, None))

    # --- labels that are floats or negative; rms maps that cannot be noise -------------------------
    add("labels_float", _raw_fits(-32, labels.astype(np.float32) + 0.7), labels.astype(np.float32) + 0.7)
    negative = labels.copy()
    negative[labels == 2] = -2
    add("labels_negative", _raw_fits(32, negative, [("EXTNAME", "'LABELS'")]), negative)
    add("labels_int16", _raw_fits(16, labels.astype(np.int16)), labels.astype(np.int16), labels_ok=True)
    add("labels_uint8_mask", _raw_fits(8, (labels > 0).astype(np.uint8)), (labels > 0).astype(np.uint8),
        labels_ok=True)
    add("labels_int64_big_ids", _raw_fits(64, labels.astype(np.int64) * 10**12), labels.astype(np.int64) * 10**12,
        labels_ok=True)
    add("labels_all_zero", _raw_fits(32, np.zeros(SHAPE, np.int32)), np.zeros(SHAPE, np.int32), labels_ok=True)
    add("rms_zeros", _raw_fits(-32, np.zeros(SHAPE, np.float32)), np.zeros(SHAPE, np.float32))
    add("rms_negative", _raw_fits(-32, -rms), -rms)
    add("rms_other_shape", _raw_fits(-32, np.full((20, 30), 2.0, np.float32)), np.full((20, 30), 2.0, np.float32))
    rms_half = rms.copy()
    rms_half[:, :32] = 0
    add("rms_half_zero", _raw_fits(-32, rms_half), rms_half)
    add("rms_inf", _raw_fits(-32, np.full(SHAPE, np.inf, np.float32)), None)
    return cases
