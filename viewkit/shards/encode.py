"""Turns one input file into the stored image: an RGB baseline JPEG, or a rejection.

Bytes pass through untouched when they already are what every decoder downstream
(nvJPEG, libjpeg-turbo in DALI, PIL) reads the same way: an 8-bit, 3-component, baseline,
upright JPEG whose segments are well formed. Everything else is decoded with PIL,
made upright and RGB, and re-encoded.
"""

from __future__ import annotations

import io
import struct
import zlib
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

IMAGE_EXTENSIONS = frozenset(
    ".jpg .jpeg .jpe .jfif .png .bmp .tif .tiff .webp .gif .ppm .pgm .pbm .pnm".split()
)

_SOF_BASELINE = 0xC0
_EXIF_ORIENTATION = 0x0112


@dataclass(frozen=True)
class JpegHeader:
    sof_marker: int
    precision: int
    components: int
    width: int
    height: int
    has_adobe: bool  # APP14: colour transform flags that decoders disagree on
    exif: bytes | None  # APP1 Exif payload, read only for its orientation


@dataclass(frozen=True)
class Prepared:
    """A worker's answer for one input: the stored JPEG, or why there is none."""

    jpeg: bytes | None
    original_size: tuple[int, int] | None  # (width, height), upright
    stored_size: tuple[int, int] | None
    conversion: str | None  # why the bytes were re-encoded; None: passed through
    rejection: str | None
    crc32: int | None = None  # of `jpeg`, computed in the worker to spare the writer


def read_jpeg_header(data: bytes) -> JpegHeader | None:
    """Strict walk over the segments before the scan; None if anything is off.

    PIL skips junk between segments that DALI's JPEG parser refuses ("Invalid marker"),
    so a lenient parser cannot decide pass-through: this walk accepts only
    well-formed marker sequences.
    """
    if len(data) < 4 or data[0] != 0xFF or data[1] != 0xD8:
        return None
    pos, sof, has_adobe, exif = 2, None, False, None
    while pos + 4 <= len(data):
        if data[pos] != 0xFF:
            return None
        marker = data[pos + 1]
        if marker == 0xFF:  # fill byte, allowed before a marker
            pos += 1
            continue
        if 0xD0 <= marker <= 0xD7 or marker in (0x01, 0xD8):
            return None  # restart markers or a second SOI cannot appear before the scan
        (length,) = struct.unpack_from(">H", data, pos + 2)
        if length < 2 or pos + 2 + length > len(data):
            return None
        payload = data[pos + 4 : pos + 2 + length]
        if marker == 0xDA:  # start of scan: the header is complete
            if sof is None:
                return None
            marker_, precision, height, width, components = sof
            return JpegHeader(marker_, precision, components, width, height, has_adobe, exif)
        if 0xC0 <= marker <= 0xCF and marker not in (0xC4, 0xC8, 0xCC):
            if len(payload) < 6:
                return None
            precision, height, width, components = struct.unpack_from(">BHHB", payload)
            sof = (marker, precision, height, width, components)
        elif marker == 0xEE and payload.startswith(b"Adobe"):
            has_adobe = True
        elif marker == 0xE1 and payload.startswith(b"Exif\x00\x00"):
            exif = payload[6:]
        pos += 2 + length
    return None


def exif_orientation(exif_payload: bytes | None) -> int:
    if not exif_payload:
        return 1
    try:
        exif = Image.Exif()
        exif.load(exif_payload)
        return int(exif.get(_EXIF_ORIENTATION, 1))
    except Exception:  # unreadable EXIF: treat as upright, as decoders do
        return 1


# Larger images are decoded at a reduced scale and stored downscaled to fit (ImageNet's largest
# is 38.5 MP, so ImageNet passes untouched): one 20000 x 20000 image would otherwise take 1.2 GB
# of decoded pixels per sample in a loader batch. PIL's own bomb check stops at 179 MP; this cap
# takes its place, so that large JPEGs are scaled, not refused.
MAX_PIXELS = 40_000_000
Image.MAX_IMAGE_PIXELS = None
# A baseline JPEG spends at least 2 bits on each 8 x 8 block of each component (a DC code and
# an end of block): about 0.03 bits a pixel. Far fewer bytes than pixels / 2048 (0.004 bits a
# pixel) means the header lies about the size (libjpeg would fill the rest with grey).
_MAX_PIXELS_PER_BYTE = 2048
# libjpeg's JPEG_MAX_DIMENSION: a longer side (a legal 70000 x 2 PNG) is stored scaled to fit.
JPEG_MAX_SIDE = 65500


# What a file that is no JPEG is, by its first bytes, so that the record says "a PNG image"
# and not "not a well-formed JPEG" for a PNG that was converted as it should be.
_OTHER_FORMATS = ((b"\x89PNG\r\n\x1a\n", "PNG"), (b"BM", "BMP"), (b"II*\x00", "TIFF"), (b"MM\x00*", "TIFF"),
                  (b"GIF8", "GIF"), (b"RIFF", "WebP"))


def passthrough_blocker(data: bytes, header: JpegHeader | None, max_side: int | None) -> str | None:
    """Why these bytes cannot be stored as they are; None when they can."""
    if header is None:
        for magic, kind in _OTHER_FORMATS:
            if data.startswith(magic) and (kind != "WebP" or data[8:12] == b"WEBP"):
                return f"a {kind} image"
        return "not a well-formed JPEG"
    if header.sof_marker != _SOF_BASELINE:
        return f"JPEG SOF marker 0x{header.sof_marker:02X} is not baseline"
    if header.precision != 8:
        return f"{header.precision}-bit JPEG"
    if header.components != 3:
        return f"{header.components}-component JPEG"
    if header.has_adobe:
        return "JPEG with an Adobe APP14 colour transform"
    if (orientation := exif_orientation(header.exif)) != 1:
        return f"EXIF orientation {orientation}"
    if not data.endswith(b"\xff\xd9"):
        return "JPEG does not end with an EOI marker"
    if max_side and max(header.width, header.height) > max_side:
        return f"larger than --max-side {max_side}"
    if header.width * header.height > MAX_PIXELS:
        return f"over {MAX_PIXELS} pixels"
    return None


def _oriented(image: Image.Image) -> bool:
    """Whether its EXIF orientation asks for a turn or a flip."""
    return image.getexif().get(0x0112, 1) not in (1, None)


def _to_rgb(image: Image.Image) -> Image.Image:
    if image.mode in ("I;16", "I;16B", "I;16L", "I"):
        # choice: 16-bit PNG/TIFF keep their top 8 bits; PIL's convert("RGB") would clip. PIL
        # reads those as 32-bit "I" too: values are taken as 16-bit, and the rare ones outside
        # 0..65535 saturate (a cast would wrap them mod 256).
        array = np.clip(np.asarray(image, dtype=np.int64), 0, 65535) >> 8
        image = Image.fromarray(array.astype(np.uint8), mode="L")
    if image.mode in ("RGBA", "LA", "PA") or (image.mode == "P" and "transparency" in image.info):
        # choice: composite transparency on white, so that cut-outs do not turn black.
        rgba = image.convert("RGBA")
        canvas = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        image = Image.alpha_composite(canvas, rgba)
    return image if image.mode == "RGB" else image.convert("RGB")


def prepare_image(data: bytes, *, max_side: int | None, quality: int, full_check: bool) -> Prepared:
    """Decides pass-through or conversion for one file's bytes. Never raises for bad input."""
    if not data:
        return Prepared(None, None, None, None, "empty file")
    header = read_jpeg_header(data)
    if header is not None and len(data) < header.width * header.height / _MAX_PIXELS_PER_BYTE:
        return Prepared(None, None, None, None, f"the JPEG header declares {header.width}x{header.height} pixels, "
                        f"far too many for its {len(data)} bytes (a damaged or crafted header)")
    blocker = passthrough_blocker(data, header, max_side)
    if blocker is None:
        size = (header.width, header.height)
        if full_check:  # with DALI's decoder, the loaders' own, which also names libjpeg's warnings
            from viewkit.shards.verify import decode_problem

            if problem := decode_problem(data):
                return Prepared(None, None, None, None, f"undecodable JPEG: {problem}")
        return Prepared(data, size, size, None, None, zlib.crc32(data))
    try:
        with Image.open(io.BytesIO(data)) as image:
            full = image.size  # as declared: a draft decodes smaller
            if image.width * image.height > MAX_PIXELS:
                if image.format != "JPEG":
                    return Prepared(None, None, None, None, f"{image.format} of {image.width}x{image.height}: over "
                                    f"{MAX_PIXELS} pixels, and only JPEGs decode at a reduced scale")
                # DCT scaling: decoded at 1/2, 1/4 or 1/8 scale, never at full size in memory
                scale = (MAX_PIXELS / (image.width * image.height)) ** 0.5
                image.draft("RGB", (max(1, int(image.width * scale)), max(1, int(image.height * scale))))
            image.load()
            decoded = image.size
            # in place: a copy of a decoded 8000 x 8000 draft is 190 MB more at the peak
            upright = ImageOps.exif_transpose(image, in_place=False) if _oriented(image) else image
            rgb = _to_rgb(upright)
            original_size = full if upright.size == decoded else (full[1], full[0])
    except UnidentifiedImageError:
        return Prepared(None, None, None, None, "undecodable: not an image format PIL can read, or its header is damaged")
    except Exception as e:
        return Prepared(None, None, None, None, f"undecodable: {type(e).__name__}: {e}")
    scale = min(1.0, max_side / max(rgb.size) if max_side else 1.0, (MAX_PIXELS / (rgb.width * rgb.height)) ** 0.5,
                JPEG_MAX_SIDE / max(rgb.size))
    if max(rgb.size) > JPEG_MAX_SIDE:
        blocker += f"; its {max(rgb.size)}-pixel side is over JPEG's {JPEG_MAX_SIDE}, stored scaled to fit"
    if scale < 1.0:
        new_size = (max(1, int(rgb.width * scale)), max(1, int(rgb.height * scale)))
        rgb = rgb.resize(new_size, Image.Resampling.BICUBIC, reducing_gap=3.0)
    buffer = io.BytesIO()
    try:
        rgb.save(buffer, format="JPEG", quality=quality, progressive=False, optimize=False)
    except (OSError, ValueError) as e:  # never one file's failure for the whole run
        return Prepared(None, None, None, None, f"cannot be stored as a JPEG ({rgb.width}x{rgb.height}): {e}")
    jpeg = buffer.getvalue()
    return Prepared(jpeg, original_size, rgb.size, blocker, None, zlib.crc32(jpeg))
