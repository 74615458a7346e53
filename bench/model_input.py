"""3. Model input per photo: what the model gets for each photo, in bytes, pixels and tokens.

The real test photos (tests/data: JPEGs from five cameras, two iPhone HEICs) and generated
12 MP ones are sent as files; the bot's own SQLite file then says which blob is the model's
copy of each (`items.model_sha256`, size in `blobs`), and the file under DATA_DIR/media gives
its pixels. A second bot with PHOTO_MAX_SIDE/PHOTO_MAX_BYTES set shows the limits move.
"""

from __future__ import annotations

import asyncio
import math
import sqlite3
from dataclasses import dataclass
from pathlib import Path

from PIL import Image

from bench import media
from bench.report import Row, kb, median, verdict
from bench.session import Context, Session

SCENARIO = "3 model input"
MAX_BYTES, MAX_SIDE = 150_000, 1024  # the defaults the target names
SMALL_BYTES, SMALL_SIDE = 60_000, 768  # the configured run
# Tokens per image on Gemini 3 by media_resolution; older models count 258 per 768 px tile.
GEMINI3_TOKENS = {"low": 280, "medium": 560, "high": 1120}
TILE, TILE_TOKENS = 768, 258


@dataclass(frozen=True)
class ModelCopy:
    """One photo's model copy."""

    file_name: str
    original_bytes: int
    bytes: int
    width: int
    height: int

    @property
    def long_side(self) -> int:
        return max(self.width, self.height)


async def run(ctx: Context) -> list[Row]:
    """Send the photos to a default bot and to one with smaller limits; read the copies back."""
    plan = ctx.plan
    real = [(p.name, p.read_bytes()) for p in media.REAL_PHOTOS]
    big = [
        (f"IMG_{i:04d}.JPG", d) for i, d in enumerate(media.photos(plan.big_kind, plan.sample_big))
    ]
    # Nothing here is timed: the two bots run side by side.
    copies, small = await asyncio.gather(
        _copies(ctx, "model-input", real + big),
        _copies(
            ctx, "model-input-small", real + big,
            PHOTO_MAX_SIDE=str(SMALL_SIDE), PHOTO_MAX_BYTES=str(SMALL_BYTES),
        ),
    )  # fmt: skip
    names = {name for name, _ in real}
    resolution = "medium"  # GEMINI_MEDIA_RESOLUTION is not set: the default
    rows: list[Row] = []
    big_label = f"{plan.big_kind.width * plan.big_kind.height / 1e6:.0f} MP"
    for label, group in (
        (f"real photos ({len(real)}: 5 JPEG, 2 HEIC)", [c for c in copies if c.file_name in names]),
        (f"{big_label} photos ({len(big)})", [c for c in copies if c.file_name not in names]),
    ):
        rows.extend(_group_rows(label, group))
    tokens = GEMINI3_TOKENS[resolution]
    tiles = [_tiles(c.width, c.height) for c in copies]
    rows.append(
        Row(
            SCENARIO,
            f"expected tokens per photo at GEMINI_MEDIA_RESOLUTION={resolution}",
            f"{tokens} on Gemini 3 (any size); ~{TILE_TOKENS * median(tiles):.0f} on 2.x "
            f"(median {median(tiles):.0f} tiles of {TILE} px)",
            data={"gemini3": GEMINI3_TOKENS, "tiles": tiles},
        )
    )
    worst_bytes = max(c.bytes for c in small)
    worst_side = max(c.long_side for c in small)
    rows.append(
        Row(
            SCENARIO,
            f"configurable: PHOTO_MAX_SIDE={SMALL_SIDE} PHOTO_MAX_BYTES={SMALL_BYTES}, all "
            f"{len(small)} photos: max bytes / long side",
            f"{kb(worst_bytes)} / {worst_side} px",
            f"<= {kb(SMALL_BYTES)} / {SMALL_SIDE} px",
            verdict(worst_bytes <= SMALL_BYTES and worst_side <= SMALL_SIDE),
            {"bytes": [c.bytes for c in small], "long_side": [c.long_side for c in small]},
        )
    )
    return rows


def _group_rows(label: str, group: list[ModelCopy]) -> list[Row]:
    sizes = [c.bytes for c in group]
    sides = [c.long_side for c in group]
    originals = [c.original_bytes for c in group]
    return [
        Row(
            SCENARIO,
            f"{label}: model copy bytes min / median / max (originals "
            f"{kb(min(originals))}-{kb(max(originals))})",
            f"{kb(min(sizes))} / {kb(median(sizes))} / {kb(max(sizes))}",
            f"<= {kb(MAX_BYTES)}",
            verdict(max(sizes) <= MAX_BYTES),
            {"bytes": sizes, "originals": originals},
        ),
        Row(
            SCENARIO,
            f"{label}: model copy long side min / median / max",
            f"{min(sides)} / {median(sides):.0f} / {max(sides)} px "
            f"({median([c.width * c.height for c in group]) / 1e6:.2f} MP median)",
            f"<= {MAX_SIDE} px",
            verdict(max(sides) <= MAX_SIDE),
            {"long_side": sides, "pixels": [c.width * c.height for c in group]},
        ),
    ]


async def _copies(
    ctx: Context, name: str, files: list[tuple[str, bytes]], **env: str
) -> list[ModelCopy]:
    async with Session(ctx, name, **env) as session:
        user = session.traveller()
        batches = [user.send_files(files[i : i + 10]) for i in range(0, len(files), 10)]
        await user.acknowledged(batches, ctx.plan.ack_quiet)
        await session.stored()  # every photo stored with its model copy
        copies = _read_back(session.db_path, session.data_dir)
        await session.stop_process()
    if len(copies) != len(files):
        raise RuntimeError(f"the bot kept {len(copies)} of {len(files)} photos")
    return copies


def _read_back(db_path: Path, data_dir: Path) -> list[ModelCopy]:
    """Every photo item with its original's size and its model copy's bytes and pixels."""
    conn = sqlite3.connect(db_path)
    try:
        rows = conn.execute(
            "SELECT i.file_name, src.size, i.model_sha256, model.size FROM items i "
            "JOIN blobs src ON src.sha256 = i.source_sha256 "
            "JOIN blobs model ON model.sha256 = i.model_sha256 "
            "WHERE i.kind = 'photo' ORDER BY i.position"
        ).fetchall()
    finally:
        conn.close()
    copies = []
    for file_name, original, sha, size in rows:
        with Image.open(data_dir / "media" / sha[:2] / sha) as image:
            width, height = image.size
        copies.append(ModelCopy(file_name, original, size, width, height))
    return copies


def _tiles(width: int, height: int) -> int:
    """768 px tiles an image counts as on Gemini 2.x (one if both sides are at most 384)."""
    if width <= 384 and height <= 384:
        return 1
    return math.ceil(width / TILE) * math.ceil(height / TILE)
