"""FitsRowReader and write_fits_rows: bit for bit what the whole-plane read (``read_float32``, the
reading SExtractor mode had before it read strips) and write_fits give, strip by strip."""
from __future__ import annotations

import gzip

import numpy as np
import pytest
from astropy.io import fits

from napari_galseg._atomic import FileExistsClearError
from napari_galseg.io import FitsReadError, labels_header, open_fits_array
from napari_galseg.io.fits_rows import FitsRowReader
from napari_galseg.io.write import write_fits, write_fits_rows

pytestmark = pytest.mark.filterwarnings("ignore:overflow encountered:RuntimeWarning", "ignore:invalid value:RuntimeWarning")

_RAW = {8: ">u1", 16: ">i2", 32: ">i4", 64: ">i8", -32: ">f4", -64: ">f8"}


def read_float32(array) -> np.ndarray:
    """The reference: the whole plane as native float32 through FitsArray, ~16 MiB of rows at a time."""
    from napari_galseg.io.fits_rows import no_finite_pixels_error

    h, w = array.shape
    out = np.empty((h, w), np.float32)
    step = max(1, (16 << 20) // max(1, 4 * w))
    finite = False
    for y0 in range(0, h, step):
        out[y0:y0 + step] = array[y0:y0 + step]
        finite = finite or bool(np.isfinite(out[y0:y0 + step]).any())
    if not finite:
        raise no_finite_pixels_error(array)
    return out


def _write_raw(path, stored: np.ndarray, bitpix: int, cards=(), extension: bool = False, gz: bool = False):
    """A FITS file holding ``stored`` as raw BITPIX values with the given extra cards (BSCALE,
    BZERO, BLANK...): written by hand so that astropy applies the scaling only on reading."""
    header = fits.Header()
    header["SIMPLE"] = True
    header["BITPIX"] = bitpix
    header["NAXIS"] = stored.ndim
    for i, n in enumerate(reversed(stored.shape)):
        header[f"NAXIS{i + 1}"] = n
    for key, value in cards:
        header[key] = value
    raw = np.ascontiguousarray(stored, dtype=_RAW[bitpix]).tobytes()
    blob = b""
    if extension:  # an empty primary, the image in HDU 1
        blob = fits.PrimaryHDU().header.tostring().encode()
        header.remove("SIMPLE")
        header.insert(0, ("XTENSION", "IMAGE"))
        header.insert("NAXIS" + str(stored.ndim), ("PCOUNT", 0), after=True)
        header.insert("PCOUNT", ("GCOUNT", 1), after=True)
    blob += header.tostring().encode() + raw + b"\0" * (-len(raw) % 2880)
    if gz:
        blob = gzip.compress(blob)
    path.write_bytes(blob)
    return path


def _bits(a: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(a).view(np.uint32)


def _strips(reader: FitsRowReader, height: int, use_out: bool) -> np.ndarray:
    h, w = reader.shape
    pieces = []
    for y0 in range(0, h, height):
        y1 = min(h, y0 + height)
        out = np.full((y1 - y0, w), -7.0, np.float32) if use_out else None
        got = reader.read_rows(y0, y1, out=out)
        if use_out:
            assert got is out
        pieces.append(got.copy())
    return np.concatenate(pieces)


def _cases(rng):
    """(name, stored values, BITPIX, cards, plain?) — plain: read with positioned reads."""
    f = rng.normal(0, 30, (37, 53)).astype(np.float32)
    f[3, 4], f[5, 6], f[7, 8] = np.nan, np.inf, -np.inf
    f[9, 10] = np.float32(-0.0)
    f.view(np.uint32)[11, 12] = 0x7F800001  # a signalling NaN payload must stay as it is
    f.view(np.uint32)[13, 14] = 0xFFC00123
    f.view(np.uint32)[15, 16] = 0x00000001  # a denormal
    d = rng.normal(0, 1e3, (29, 31)) * np.exp(rng.uniform(-20, 20, (29, 31)))
    d[0, 0], d[1, 1] = np.nan, 1e300  # overflows to inf in float32
    i64 = rng.integers(-(2**62), 2**62, (19, 23), dtype=np.int64)
    i64[0, :5] = [2**53 + 1, 2**60 + 2**36 + 1, -(2**63), 2**63 - 1, (1 << 24) + 1]
    i32 = rng.integers(-(2**31), 2**31 - 1, (21, 17), dtype=np.int64).astype(np.int32)
    i16 = rng.integers(-(2**15), 2**15, (26, 33)).astype(np.int16)
    u8 = rng.integers(0, 256, (14, 9)).astype(np.uint8)
    return [
        ("f32", f, -32, (), True),
        ("f64", d, -64, (), True),
        ("i64", i64, 64, (), True),
        ("i32", i32, 32, (), True),
        ("i16", i16, 16, (), True),
        ("u8", u8, 8, (), True),
        ("u16", i16, 16, (("BZERO", 32768),), False),
        ("u32", i32, 32, (("BZERO", 2**31),), False),
        ("i16 scaled", i16, 16, (("BSCALE", 0.1), ("BZERO", 3.7)), False),
        ("i16 scaled blank", i16, 16, (("BSCALE", 0.37), ("BZERO", -12.25), ("BLANK", int(i16[2, 2]))), False),
        ("i16 blank", i16, 16, (("BLANK", int(i16[4, 4])),), False),
        ("i64 blank", i64, 64, (("BLANK", int(i64[1, 1])),), False),
        ("i32 scaled", i32, 32, (("BSCALE", 1e-3), ("BZERO", 0.5)), False),
        ("i64 scaled", i64, 64, (("BSCALE", 3.3e-9), ("BZERO", 7.0)), False),
        ("f32 scaled", f, -32, (("BSCALE", 2.5), ("BZERO", 1.0)), False),
        ("f64 bscale 64", d, -64, (("BSCALE", 64.0),), False),
        ("u8 scaled", u8, 8, (("BSCALE", 0.2), ("BZERO", -1.0)), False),
    ]


@pytest.mark.parametrize("index", range(17))
def test_reader_matches_read_float32_bit_for_bit(tmp_path, index):
    name, stored, bitpix, cards, plain = _cases(np.random.default_rng(index))[index]
    path = _write_raw(tmp_path / "f.fits", stored, bitpix, cards)
    array, _ = open_fits_array(path)
    expected = read_float32(array)
    assert (array.mode == "plain") == plain, name
    with FitsRowReader(array) as reader:
        assert reader._direct == plain
        for height in (1, 2, 7, stored.shape[0]):
            for use_out in (False, True):
                got = _strips(reader, height, use_out)
                assert got.dtype == np.float32 and got.dtype.isnative
                assert np.array_equal(_bits(got), _bits(expected)), (name, height, use_out)
        reader.check_finite()  # some pixels are finite


@pytest.mark.parametrize("layout", ["extension", "cube", "gzip"])
def test_reader_layouts(tmp_path, layout):
    rng = np.random.default_rng(3)
    stored = rng.normal(0, 1, (1, 41, 29) if layout == "cube" else (41, 29)).astype(np.float32)
    name = "f.fits.gz" if layout == "gzip" else "f.fits"
    path = _write_raw(tmp_path / name, stored, -32, extension=layout == "extension", gz=layout == "gzip")
    array, _ = open_fits_array(path)
    assert array.mode == ("memory" if layout == "gzip" else "plain")
    expected = read_float32(array)
    with FitsRowReader(array) as reader:
        assert np.array_equal(_bits(_strips(reader, 6, False)), _bits(expected))


def test_reader_large_frame_over_several_read_float32_blocks(tmp_path):
    # read_float32 reads 16 MiB of rows at a time: 1048 rows of 4000 pixels
    rng = np.random.default_rng(5)
    stored = rng.normal(100, 10, (1100, 4000)).astype(np.float32)
    path = _write_raw(tmp_path / "f.fits", stored, -32)
    array, _ = open_fits_array(path)
    expected = read_float32(array)
    with FitsRowReader(array) as reader:
        assert np.array_equal(_bits(_strips(reader, 333, True)), _bits(expected))


@pytest.mark.parametrize("bitpix, cards", [(-32, ()), (16, (("BSCALE", 0.5), ("BLANK", -1)))])
def test_no_finite_pixels_same_error(tmp_path, bitpix, cards):
    stored = np.full((6, 5), np.nan, np.float32) if bitpix == -32 else np.full((6, 5), -1, np.int16)
    path = _write_raw(tmp_path / "nan.fits", stored, bitpix, cards)
    array, _ = open_fits_array(path)
    with pytest.raises(FitsReadError) as old:
        read_float32(array)
    with FitsRowReader(array) as reader:
        for y0 in range(0, 6, 4):
            reader.read_rows(y0, min(6, y0 + 4))
        assert not reader.any_finite
        with pytest.raises(FitsReadError) as new:
            reader.check_finite()
    assert str(new.value) == str(old.value)


def test_reader_checks_rows_and_out(tmp_path):
    path = _write_raw(tmp_path / "f.fits", np.zeros((4, 3), np.float32), -32)
    array, _ = open_fits_array(path)
    reader = FitsRowReader(array)
    assert reader.read_rows(2, 2).shape == (0, 3)
    with pytest.raises(IndexError):
        reader.read_rows(3, 5)
    with pytest.raises(ValueError):
        reader.read_rows(0, 2, out=np.empty((2, 3), np.float64))
    reader.close()
    assert reader.read_rows(0, 4).shape == (4, 3)  # reopens
    reader.close()


def test_reader_truncated_file(tmp_path):
    path = _write_raw(tmp_path / "f.fits", np.ones((40, 30), np.float32), -32)
    array, _ = open_fits_array(path)
    with open(path, "r+b") as fh:
        fh.truncate(2880 + 10 * 30 * 4)
    with FitsRowReader(array) as reader:
        reader.read_rows(0, 10)
        with pytest.raises(FitsReadError, match="ended early"):
            reader.read_rows(5, 20)


# -- writer


def _header():
    h = fits.Header()
    h["OBJECT"] = "field"
    h["BUNIT"] = "ADU"
    h["CTYPE1"], h["CTYPE2"] = "RA---TAN", "DEC--TAN"
    h["CRVAL1"], h["CRVAL2"] = 150.1, 2.2
    h["CRPIX1"], h["CRPIX2"] = 10.5, 20.5
    h["CDELT1"], h["CDELT2"] = -5e-5, 5e-5
    h["HISTORY"] = "made for a test"
    return h


def _bands(image: np.ndarray, heights):
    y0, k = 0, 0
    while y0 < image.shape[0]:
        y1 = min(image.shape[0], y0 + heights[k % len(heights)])
        yield image[y0:y1]
        y0, k = y1, k + 1


@pytest.mark.parametrize("shape", [(1, 1), (5, 7), (36, 20), (1100, 4000)])
@pytest.mark.parametrize("dtype", [np.int32, np.float32])
def test_writer_same_bytes_as_write_fits(tmp_path, shape, dtype):
    rng = np.random.default_rng(shape[0])
    if dtype == np.int32:
        image = rng.integers(-(2**31), 2**31 - 1, shape, dtype=np.int64).astype(np.int32)
    else:
        image = rng.normal(0, 1, shape).astype(np.float32)
        image.flat[:: max(1, image.size // 3)] = np.nan
    header = labels_header(_header())
    old = write_fits(tmp_path / "old.fits", image, header=header)
    for k, heights in enumerate(([shape[0]], [1], [3, 1, 17], [2000])):
        new = write_fits_rows(tmp_path / f"new{k}.fits", shape, dtype, header, _bands(image, heights))
        assert new.read_bytes() == old.read_bytes(), heights
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.endswith(".part")) == []


def test_writer_int64_bands_into_int32_file(tmp_path):
    image = np.arange(60, dtype=np.int64).reshape(6, 10)
    old = write_fits(tmp_path / "old.fits", image, header=labels_header(None), dtype=np.int32)
    new = write_fits_rows(tmp_path / "new.fits", image.shape, np.int32, labels_header(None), _bands(image, [4]))
    assert new.read_bytes() == old.read_bytes()
    with pytest.raises(OverflowError):
        write_fits_rows(tmp_path / "big.fits", (1, 2), np.int32, None, iter([np.array([[0, 2**40]])]))
    assert not (tmp_path / "big.fits").exists()


def test_writer_refuses_an_existing_file(tmp_path):
    target = tmp_path / "seg.fits"
    target.write_bytes(b"mine")
    image = np.ones((4, 4), np.int32)
    with pytest.raises(FileExistsClearError) as old:
        write_fits(target, image, header=labels_header(None))
    started = []

    def rows():
        started.append(True)
        yield image

    with pytest.raises(FileExistsClearError) as new:
        write_fits_rows(target, image.shape, np.int32, labels_header(None), rows())
    assert str(new.value) == str(old.value)
    assert not started  # refused before any band is computed
    assert target.read_bytes() == b"mine"
    write_fits_rows(target, image.shape, np.int32, labels_header(None), rows(), overwrite=True)
    assert target.read_bytes() == write_fits(tmp_path / "ref.fits", image, header=labels_header(None)).read_bytes()


@pytest.mark.parametrize("existing", [False, True])
def test_failing_generator_leaves_no_partial_file(tmp_path, existing):
    target = tmp_path / "seg.fits"
    if existing:
        target.write_bytes(b"mine")
    closed = []

    def rows():
        try:
            yield np.zeros((3, 5), np.int32)
            raise RuntimeError("extraction failed")
        finally:
            closed.append(True)

    with pytest.raises(RuntimeError, match="extraction failed"):
        write_fits_rows(target, (6, 5), np.int32, None, rows(), overwrite=True)
    assert closed
    assert [p.name for p in tmp_path.iterdir()] == (["seg.fits"] if existing else [])
    if existing:
        assert target.read_bytes() == b"mine"


def test_writer_wrong_rows_leave_no_file(tmp_path):
    closed = []

    def rows(n, width=5):
        try:
            yield np.zeros((n, width), np.int32)
            yield np.zeros((n, width), np.int32)
        finally:
            closed.append(n)

    with pytest.raises(RuntimeError, match="only 4 of 6 rows"):
        write_fits_rows(tmp_path / "a.fits", (6, 5), np.int32, None, rows(2))
    with pytest.raises(ValueError, match="more rows"):
        write_fits_rows(tmp_path / "a.fits", (6, 5), np.int32, None, rows(4))
    with pytest.raises(ValueError, match=r"\(n, 5\)"):
        write_fits_rows(tmp_path / "a.fits", (6, 5), np.int32, None, rows(3, width=4))
    with pytest.raises(ValueError, match=r"\(n, 5\)"):
        write_fits_rows(tmp_path / "a.fits", (6, 5), np.int32, None, iter([np.zeros(5, np.int32)]))
    assert closed == [2, 4, 3]  # the writer closed each generator, also mid-way
    assert list(tmp_path.iterdir()) == []
