"""Photos: EXIF facts of real camera files, orientation, damaged input, size of what we send."""

from __future__ import annotations

import io
import random
import struct
import subprocess
import sys
import textwrap
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from PIL import Image, ImageChops, ImageCms, ImageOps, ImageStat, TiffImagePlugin

from bot.errors import MediaRejected
from bot.media.exif import parse_exif_datetime, read_photo_facts
from bot.media.facts import camera_label
from bot.media.images import (
    ModelImage,
    prepare_for_model,
    probe_image,
    register_heif,
    web_image,
)
from tests.image_files import png_declaring

DATA = Path(__file__).parent / "data"


@dataclass(frozen=True)
class Expected:
    file: str
    taken_at: datetime
    camera: str
    location: tuple[float, float] | None
    altitude: float | None
    size: tuple[int, int]  # as displayed
    mime_type: str


PHOTOS = [
    Expected(
        "lisbon_iphone_xr.heic",
        datetime(2019, 8, 21, 11, 21, 36, 245000),
        "Apple iPhone XR",
        (38.699539, -9.207747),
        14.0,
        (3024, 4032),
        "image/heic",
    ),
    Expected(
        "missouri_iphone11promax.heic",
        datetime(2021, 4, 11, 15, 47, 53, 54000, tzinfo=timezone(timedelta(hours=-5))),
        "Apple iPhone 11 Pro Max",
        (39.051344, -94.288772),
        260.6,
        (2566, 3313),
        "image/heic",
    ),
    Expected(
        "seattle_iphone5_orientation3.jpg",
        datetime(2012, 9, 29, 16, 11, 25),
        "Apple iPhone 5",
        (47.627167, -122.337333),
        4.0,
        (3264, 2448),
        "image/jpeg",
    ),
    Expected(
        "rome_iphone4.jpg",
        datetime(2011, 1, 13, 14, 33, 39),
        "Apple iPhone 4",
        (41.853, 12.488833),
        None,
        (1296, 968),
        "image/jpeg",
    ),
    Expected(
        "bc_canada_olympus_fe230.jpg",
        datetime(2008, 12, 7, 10, 28, 52),  # DateTime (the modified date) says 2008-12-09
        "Olympus FE230/X790",
        (50.956917, -118.107275),
        1875.3,
        (2304, 3072),
        "image/jpeg",
    ),
    Expected(
        "canon_sx60_orientation6_no_gps_coords.jpg",
        datetime(2015, 2, 9, 22, 47, 44),
        "Canon PowerShot SX60 HS",
        None,  # the GPS IFD holds only GPSVersionID
        None,
        (1536, 2048),  # stored 2048x1536, orientation 6
        "image/jpeg",
    ),
    Expected(
        "slovakia_nikon_d5000_gps_seconds_zero_denominator.jpg",
        datetime(2011, 3, 12, 15, 36, 11),
        "Nikon D5000",
        (48.888726, 21.043251),  # seconds are 0/0: NaN in Pillow, counted as 0
        324.1,
        (858, 570),
        "image/jpeg",
    ),
]


@pytest.fixture(scope="module")
def prepared() -> dict[str, ModelImage]:
    """Each real photo prepared once for the model (HEIC decoding is the slow part)."""
    return {photo.file: prepare_for_model(DATA / photo.file) for photo in PHOTOS}


@pytest.mark.parametrize("photo", PHOTOS, ids=lambda photo: photo.file)
def test_real_photo_facts_match_the_manifest(photo: Expected) -> None:
    facts = read_photo_facts(DATA / photo.file)

    assert facts.taken_at == photo.taken_at
    assert facts.taken_at is not None
    assert facts.taken_at.utcoffset() == photo.taken_at.utcoffset()
    assert facts.time_source == "exif"
    assert facts.camera == photo.camera
    assert (facts.width, facts.height) == photo.size
    assert facts.duration is None
    if photo.location is None:
        assert not facts.has_location()
        assert (facts.latitude, facts.longitude, facts.altitude) == (None, None, None)
    else:
        assert facts.has_location()
        assert facts.latitude is not None and facts.longitude is not None
        # To five decimals (about a metre); the manifest's figures are themselves rounded.
        assert facts.latitude == pytest.approx(photo.location[0], abs=1e-5)
        assert facts.longitude == pytest.approx(photo.location[1], abs=1e-5)
        if photo.altitude is None:
            assert facts.altitude is None
        else:
            assert facts.altitude == pytest.approx(photo.altitude, abs=0.05)


@pytest.mark.parametrize("photo", PHOTOS, ids=lambda photo: photo.file)
def test_real_photo_probe_gives_format_and_displayed_size(photo: Expected) -> None:
    info = probe_image(DATA / photo.file)

    assert info.mime_type == photo.mime_type
    assert (info.width, info.height) == photo.size


@pytest.mark.parametrize("photo", PHOTOS, ids=lambda photo: photo.file)
def test_real_photo_is_prepared_upright_and_small(
    photo: Expected, prepared: dict[str, ModelImage]
) -> None:
    result = prepared[photo.file]
    decoded = Image.open(io.BytesIO(result.jpeg))

    assert len(result.jpeg) <= 150_000
    assert decoded.format == "JPEG" and decoded.mode == "RGB"
    assert decoded.size == (result.width, result.height)
    assert max(decoded.size) <= 1024
    assert not decoded.getexif()  # no EXIF, so no location leaves with the picture
    # Same aspect as the displayed photo: the HEIC is not rotated twice, the Canon turns.
    display_w, display_h = photo.size
    assert (decoded.width > decoded.height) == (display_w > display_h)
    assert abs(decoded.width / decoded.height - display_w / display_h) < 0.01
    print(f"{photo.file}: {len(result.jpeg)} bytes, {result.width}x{result.height}")


# The HEIC needs no pixel check here: its reference would come from the same decoder, and the
# portrait shape above already shows it was not rotated twice.
@pytest.mark.parametrize(
    "file", ["seattle_iphone5_orientation3.jpg", "canon_sx60_orientation6_no_gps_coords.jpg"]
)
def test_prepared_real_photo_matches_the_upright_picture_not_the_stored_one(
    file: str, prepared: dict[str, ModelImage]
) -> None:
    result = Image.open(io.BytesIO(prepared[file].jpeg))
    with Image.open(DATA / file) as stored:
        stored.draft("RGB", (stored.width // 4, stored.height // 4))
        stored.load()
        upright = ImageOps.exif_transpose(stored)
        as_stored = stored.convert("RGB")

    right = _difference(result, upright)
    assert right < 10
    if as_stored.size == upright.size:
        # Orientation 3 keeps the landscape shape: only the pixels tell it was flipped.
        assert _difference(result, as_stored) > 3 * right


def _difference(picture: Image.Image, reference: Image.Image) -> float:
    """Mean absolute pixel difference after scaling the reference to the picture's size."""
    scaled = reference.convert("RGB").resize(picture.size, Image.Resampling.BILINEAR)
    diff = ImageChops.difference(picture.convert("RGB"), scaled)
    return sum(ImageStat.Stat(diff).mean) / 3


# --- orientation with synthetic pictures ---------------------------------------------------

# The transpose that turns an upright picture into what a camera stores with this tag.
_STORED_AS = {
    1: None,
    2: Image.Transpose.FLIP_LEFT_RIGHT,
    3: Image.Transpose.ROTATE_180,
    4: Image.Transpose.FLIP_TOP_BOTTOM,
    5: Image.Transpose.TRANSPOSE,
    6: Image.Transpose.ROTATE_90,
    7: Image.Transpose.TRANSVERSE,
    8: Image.Transpose.ROTATE_270,
}
RED, BLUE, WHITE = (255, 0, 0), (0, 0, 255), (255, 255, 255)


def _upright_picture(width: int = 1600) -> Image.Image:
    """White 4:3 picture, red block top-left and blue block top-right."""
    height = width * 3 // 4
    picture = Image.new("RGB", (width, height), WHITE)
    picture.paste(RED, (0, 0, width // 4, height // 4))
    picture.paste(BLUE, (width * 3 // 4, 0, width, height // 4))
    return picture


def _with_orientation(path: Path, tag: int, fmt: str = "JPEG", width: int = 1600) -> Path:
    """Save the upright picture as a camera would store it with this Orientation tag."""
    transpose = _STORED_AS[tag]
    picture = _upright_picture(width)
    stored = picture.transpose(transpose) if transpose is not None else picture
    exif = Image.Exif()
    exif[0x0112] = tag
    stored.save(path, fmt, exif=exif.tobytes(), quality=90)
    return path


def _assert_upright(jpeg: bytes, long_side: int) -> None:
    picture = Image.open(io.BytesIO(jpeg)).convert("RGB")
    width, height = picture.size
    assert (width, height) == (long_side, long_side * 3 // 4)

    def colour_at(x: float, y: float) -> tuple[int, ...]:
        pixel = picture.getpixel((int(x * width), int(y * height)))
        assert isinstance(pixel, tuple)
        return pixel

    def near(actual: tuple[int, ...], expected: tuple[int, int, int]) -> bool:
        return all(abs(a - e) < 40 for a, e in zip(actual, expected, strict=True))

    assert near(colour_at(0.1, 0.1), RED)
    assert near(colour_at(0.9, 0.1), BLUE)
    assert near(colour_at(0.1, 0.9), WHITE)
    assert near(colour_at(0.9, 0.9), WHITE)


@pytest.mark.parametrize("tag", range(1, 9))
def test_jpeg_with_orientation_tag_is_prepared_upright(tmp_path: Path, tag: int) -> None:
    path = _with_orientation(tmp_path / f"o{tag}.jpg", tag)

    _assert_upright(prepare_for_model(path).jpeg, 1024)
    _assert_upright(web_image(path, max_side=800), 800)
    facts = read_photo_facts(path)
    assert (facts.width, facts.height) == (1600, 1200)


@pytest.mark.parametrize("fmt", ["PNG", "WEBP", "TIFF"])
def test_png_webp_tiff_orientation_tag_is_honoured(tmp_path: Path, fmt: str) -> None:
    path = _with_orientation(tmp_path / f"o6.{fmt.lower()}", 6, fmt)

    assert (probe_image(path).width, probe_image(path).height) == (1600, 1200)
    facts = read_photo_facts(path)
    assert (facts.width, facts.height) == (1600, 1200)
    _assert_upright(prepare_for_model(path).jpeg, 1024)


def test_heic_is_not_rotated_twice(tmp_path: Path) -> None:
    # pillow-heif turns EXIF orientation 6 into the container's rotation when saving, and
    # applies that rotation when reading: the reader must not apply the tag again.
    register_heif()
    path = _with_orientation(tmp_path / "o6.heic", 6, "HEIF", width=640)
    with Image.open(path) as reread:
        assert reread.size == (640, 480)
        assert reread.info.get("original_orientation") == 6

    _assert_upright(prepare_for_model(path).jpeg, 640)
    _assert_upright(web_image(path), 640)
    assert (probe_image(path).width, probe_image(path).height) == (640, 480)
    facts = read_photo_facts(path)
    assert (facts.width, facts.height) == (640, 480)


def test_web_image_keeps_the_colour_profile_and_the_model_image_drops_everything(
    tmp_path: Path,
) -> None:
    profile = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
    exif = Image.Exif()
    exif[0x0112] = 1
    exif.get_ifd(0x8825).update({1: "N", 2: (45.0, 0.0, 0.0), 3: "E", 4: (7.0, 0.0, 0.0)})
    path = tmp_path / "profiled.jpg"
    _upright_picture(800).save(path, icc_profile=profile, exif=exif.tobytes())

    for_web = Image.open(io.BytesIO(web_image(path)))
    for_model = Image.open(io.BytesIO(prepare_for_model(path).jpeg))
    assert for_web.info.get("icc_profile") == profile
    assert "icc_profile" not in for_model.info
    assert not for_web.getexif() and not for_model.getexif()


# --- colour modes ----------------------------------------------------------------------------


def test_transparent_png_is_flattened_on_white(tmp_path: Path) -> None:
    picture = Image.new("RGBA", (200, 100), (0, 0, 0, 0))
    picture.paste((255, 0, 0, 255), (0, 0, 100, 100))
    picture.save(tmp_path / "alpha.png")

    result = Image.open(io.BytesIO(prepare_for_model(tmp_path / "alpha.png").jpeg))
    assert result.mode == "RGB"
    assert all(channel > 240 for channel in _pixel(result, 150, 50))
    assert _pixel(result, 50, 50)[0] > 200 and _pixel(result, 50, 50)[1] < 40


@pytest.mark.parametrize("mode", ["P", "LA", "L", "1", "CMYK", "I;16"])
def test_unusual_modes_become_rgb(tmp_path: Path, mode: str) -> None:
    if mode == "I;16":
        # A 16-bit mid-grey: a plain conversion would clip it to white.
        picture = Image.frombytes("I;16", (64, 64), struct.pack("<H", 40000) * 64 * 64)
        path = tmp_path / "grey16.png"
    else:
        picture = Image.new("RGB", (64, 64), (120, 120, 120)).convert(mode)
        path = tmp_path / ("cmyk.jpg" if mode == "CMYK" else f"{mode}.png")
    if mode == "P":
        picture.info["transparency"] = 0
    picture.save(path)

    result = Image.open(io.BytesIO(prepare_for_model(path).jpeg))
    assert result.mode == "RGB" and result.size == (64, 64)
    if mode == "I;16":
        assert 140 < _pixel(result, 32, 32)[0] < 175  # 40000 / 65535 * 255 = 156


def _pixel(picture: Image.Image, x: int, y: int) -> tuple[int, ...]:
    value = picture.getpixel((x, y))
    assert isinstance(value, tuple)
    return value


@pytest.mark.parametrize(
    ("fmt", "mime_type"),
    [("GIF", "image/gif"), ("BMP", "image/bmp"), ("WEBP", "image/webp"), ("PNG", "image/png")],
)
def test_other_pillow_formats_are_taken(tmp_path: Path, fmt: str, mime_type: str) -> None:
    path = tmp_path / f"picture.{fmt.lower()}"
    _upright_picture().save(path, fmt)

    info = probe_image(path)
    assert (info.format, info.mime_type, info.width, info.height) == (fmt, mime_type, 1600, 1200)
    _assert_upright(prepare_for_model(path).jpeg, 1024)


# --- damaged and hostile input ---------------------------------------------------------------


def _first_half(name: str) -> bytes:
    data = (DATA / name).read_bytes()
    return data[: len(data) // 2]


BAD_FILES: dict[str, tuple[bytes, str]] = {
    "empty": (b"", "corrupt"),
    "random_bytes": (random.Random(7).randbytes(4096), "unsupported"),
    "pdf": (b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n1 0 obj\n<< /Type /Catalog >>\nendobj\n", "unsupported"),
    "bomb_20000x20000.png": (png_declaring(20_000, 20_000), "too_large"),
    "bomb_9000x9000.png": (png_declaring(9_000, 9_000), "too_large"),
    "truncated.heic": (_first_half("lisbon_iphone_xr.heic"), "corrupt"),
    "png_header_only": (png_declaring(100, 100)[:40], "corrupt"),
}


@pytest.mark.parametrize("name", list(BAD_FILES))
def test_bad_image_is_rejected_with_its_reason(tmp_path: Path, name: str) -> None:
    data, reason = BAD_FILES[name]
    path = tmp_path / name
    path.write_bytes(data)

    for check in (probe_image, prepare_for_model, web_image):
        with pytest.raises(MediaRejected) as caught:
            check(path)
        assert caught.value.reason == reason, check.__name__
        assert str(caught.value).endswith(".")
        assert "\n" not in str(caught.value)
    # Reading EXIF decodes no pixels, so a bomb within Pillow's own limit may still give facts;
    # anything else must be the same refusal, never another exception type.
    try:
        read_photo_facts(path)
    except MediaRejected as refusal:
        assert refusal.reason == reason
    else:
        assert reason == "too_large"


def test_truncated_jpeg_passes_the_cheap_probe_but_fails_when_decoded(tmp_path: Path) -> None:
    path = tmp_path / "truncated.jpg"
    path.write_bytes(_first_half("bc_canada_olympus_fe230.jpg"))

    assert probe_image(path).format == "JPEG"  # the header is intact; decoding is the test
    assert read_photo_facts(path).taken_at == datetime(2008, 12, 7, 10, 28, 52)
    for decode in (prepare_for_model, web_image):
        with pytest.raises(MediaRejected) as caught:
            decode(path)
        assert caught.value.reason == "corrupt"
        assert str(caught.value) == "This file looks damaged: I could not read it as an image."


def test_trailer_after_a_heic_is_not_a_cut(tmp_path: Path) -> None:
    path = tmp_path / "trailer.heic"
    trailer = b"\x7f\xff\xff\xffJUNK" + bytes(32)
    path.write_bytes((DATA / "missouri_iphone11promax.heic").read_bytes() + trailer)

    assert probe_image(path).mime_type == "image/heic"


def test_pixel_limit_is_configurable(tmp_path: Path) -> None:
    path = tmp_path / "wide.png"
    Image.new("L", (3000, 2000)).save(path)  # 6 MP of nothing: a few kilobytes

    assert probe_image(path).width == 3000
    with pytest.raises(MediaRejected) as caught:
        prepare_for_model(path, max_pixels=5_000_000)
    assert caught.value.reason == "too_large"


# --- what we send to the model ---------------------------------------------------------------


@pytest.fixture(scope="module")
def noisy_12mp_jpeg(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 4000x3000 JPEG of pure noise: the hardest 12 MP picture to make small."""
    path = tmp_path_factory.mktemp("big") / "noisy_4000x3000.jpg"
    noise = random.Random(1).randbytes(4000 * 3000 * 3)
    Image.frombytes("RGB", (4000, 3000), noise).save(path, quality=85)
    return path


def test_twelve_megapixel_photo_fits_the_model_budget(noisy_12mp_jpeg: Path) -> None:
    result = prepare_for_model(noisy_12mp_jpeg)

    assert len(result.jpeg) <= 150_000
    assert max(result.width, result.height) <= 1024
    assert (result.width, result.height) == (1024, 768)


def test_tight_byte_budget_shrinks_the_picture(noisy_12mp_jpeg: Path) -> None:
    result = prepare_for_model(noisy_12mp_jpeg, max_bytes=40_000)

    assert len(result.jpeg) <= 40_000
    assert max(result.width, result.height) < 1024
    assert abs(result.width / result.height - 4 / 3) < 0.01


@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="needs Linux /proc")
def test_twelve_megapixel_jpeg_is_decoded_at_reduced_scale(noisy_12mp_jpeg: Path) -> None:
    # A fresh interpreter, and its VmHWM (peak resident size of this process image): getrusage's
    # ru_maxrss would start at pytest's own size, inherited through fork and exec.
    script = textwrap.dedent(
        """
        import sys
        from bot.media.images import prepare_for_model, register_heif

        def peak_mb():
            with open("/proc/self/status") as status:
                for line in status:
                    if line.startswith("VmHWM:"):
                        return int(line.split()[1]) / 1024
            raise RuntimeError("no VmHWM")

        register_heif()
        before = peak_mb()
        prepare_for_model(sys.argv[1])
        print(peak_mb() - before)
        """
    )
    run = subprocess.run(
        [sys.executable, "-c", script, str(noisy_12mp_jpeg)],
        cwd=Path(__file__).parent.parent,
        capture_output=True,
        text=True,
        check=True,
    )
    growth_mb = float(run.stdout.strip())
    print(f"prepare_for_model on a 4000x3000 JPEG: peak RSS growth {growth_mb:.1f} MB")
    assert growth_mb > 1  # the measurement measures something
    # Decoding all 12 MP would take 48 MB on its own (Pillow keeps RGB in 4 bytes a pixel).
    assert growth_mb < 36


# --- small parsers ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "offset", "subsec", "expected"),
    [
        ("2019:08:21 11:21:36", None, None, datetime(2019, 8, 21, 11, 21, 36)),
        (
            "2019:08:21 11:21:36\x00",
            "+03:00",
            "245",
            datetime(2019, 8, 21, 11, 21, 36, 245000, tzinfo=timezone(timedelta(hours=3))),
        ),
        (
            "2021:04:11 15:47:53",
            "-05:00",
            None,
            datetime(2021, 4, 11, 15, 47, 53, tzinfo=timezone(timedelta(hours=-5))),
        ),
        ("2021:04:11 15:47:53", "+25:00", None, datetime(2021, 4, 11, 15, 47, 53)),
        ("2021-04-11 15:47:53", "   :  ", None, datetime(2021, 4, 11, 15, 47, 53)),
        ("    :  :     :  :  ", None, None, None),
        ("0000:00:00 00:00:00", None, None, None),
        ("2021:02:30 10:00:00", None, None, None),
        (b"2021:04:11 15:47:53", None, None, datetime(2021, 4, 11, 15, 47, 53)),
        (20210411, None, None, None),
    ],
)
def test_exif_dates_parse_or_give_none(
    value: object, offset: object, subsec: object, expected: datetime | None
) -> None:
    assert parse_exif_datetime(value, offset, subsec) == expected


def test_odd_exif_gives_none_per_field_and_falls_back(tmp_path: Path) -> None:
    exif = Image.Exif()
    exif[271] = "LEICA CAMERA AG\x00"
    exif[272] = "LEICA Q2"
    exif[306] = "2020:01:02 03:04:05"
    exif_ifd = exif.get_ifd(0x8769)
    exif_ifd[36867] = "    :  :     :  :  "  # blank DateTimeOriginal: fall back
    gps = exif.get_ifd(0x8825)
    gps[1], gps[3] = "S", "W"
    gps[2] = (33.0, 52.0, TiffImagePlugin.IFDRational(0, 0))
    gps[4] = (151.0, 12.5, 0.0)
    gps[5], gps[6] = b"\x01", 10.5  # 10.5 m below sea level
    path = tmp_path / "odd.jpg"
    Image.new("RGB", (40, 30)).save(path, exif=exif.tobytes())

    facts = read_photo_facts(path)
    assert facts.taken_at == datetime(2020, 1, 2, 3, 4, 5)
    assert facts.camera == "Leica Q2"
    assert facts.latitude is not None and facts.longitude is not None
    assert round(facts.latitude, 6) == round(-(33 + 52 / 60), 6)
    assert round(facts.longitude, 6) == round(-(151 + 12.5 / 60), 6)
    assert facts.altitude == -10.5


def _jpeg_with_gps(path: Path, latitude: tuple[float, ...], longitude: tuple[float, ...]) -> Path:
    exif = Image.Exif()
    gps = exif.get_ifd(0x8825)
    gps[1], gps[2], gps[3], gps[4] = "N", latitude, "E", longitude
    Image.new("RGB", (40, 30)).save(path, exif=exif.tobytes())
    return path


def test_impossible_or_null_island_gps_and_no_exif_give_no_facts(tmp_path: Path) -> None:
    out_of_range = _jpeg_with_gps(tmp_path / "north_of_the_pole.jpg", (95.0, 0.0, 0.0), (10.0,))
    null_island = _jpeg_with_gps(tmp_path / "null_island.jpg", (0.0, 0.0, 0.0), (0.0, 0.0, 0.0))
    plain = tmp_path / "plain.png"
    Image.new("RGB", (40, 30)).save(plain)

    for path in (out_of_range, null_island, plain):
        facts = read_photo_facts(path)
        assert not facts.has_location()
        assert facts.taken_at is None and facts.time_source is None and facts.camera is None
        assert (facts.width, facts.height) == (40, 30)


@pytest.mark.parametrize(
    ("make", "model", "expected"),
    [
        ("Apple", "iPhone XR", "Apple iPhone XR"),
        ("NIKON CORPORATION", "NIKON D5000", "Nikon D5000"),
        ("OLYMPUS IMAGING CORP.  ", "FE230/X790", "Olympus FE230/X790"),
        ("Canon", "Canon PowerShot SX60 HS", "Canon PowerShot SX60 HS"),
        ("samsung", "SM-G991B", "Samsung SM-G991B"),
        ("HTC", "HTC One", "HTC One"),
        (None, "Pixel 7", "Pixel 7"),
        ("Google", None, "Google"),
        ("\x00", "  ", None),
    ],
)
def test_camera_label_names_make_once(
    make: str | None, model: str | None, expected: str | None
) -> None:
    assert camera_label(make, model) == expected


def test_the_test_data_is_where_the_attribution_says() -> None:
    attribution = (DATA / "ATTRIBUTION.md").read_text()
    for photo in PHOTOS:
        assert photo.file in attribution
        assert (DATA / photo.file).exists()
