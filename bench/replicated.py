"""8. Replicas: scenario 1's album burst on one process, one webhook replica and two of them.

Fifty chats each send an album of ten photos at once (the quick plan: five chats), and each
traveller waits for the acknowledgement that counts its whole album, as in scenario 1. The
same burst runs three times in one run, each time with fresh fakes and fresh storage:

- one process: the embedded default (SQLite and DATA_DIR/media), polling, as scenario 1 runs;
- one replica: webhook mode on PostgreSQL and a bucket (moto's server);
- two replicas: webhook mode on one PostgreSQL database and one bucket; Telegram's part is
  tests/replicas.py's `deliver`, round-robin over the replicas update by update, a chat's
  updates one after the other, chats in parallel (at most 40 requests at once).

The run starts its own PostgreSQL (tests/pg_server.py) and moto server (tests/s3_server.py)
and stops them. CPU seconds are psutil's user + system time of every process over the burst:
each bot process, this process (both fakes, the travellers and Telegram's deliveries), moto's
server and PostgreSQL (the postmaster and its backends).

"Burst processed" waits on after the acknowledgements (and the CPU clock) for every album's
model copies, read from the configuration's database (bench/processed.py).

A chat's acknowledgement is one job at a time across the replicas (its rows say what to send or
edit), whichever replica received each photo, so the messages-per-album row must stay 1 / 1 on
two replicas too.
"""

from __future__ import annotations

import asyncio
import math
import os
import shutil
import subprocess
import tempfile
import time
from collections.abc import Callable, Coroutine, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psutil

from bench import media
from bench.chats import TIMEOUT, Ack, Traveller, Watcher, prepare_photos
from bench.process import attach_profiler, environment
from bench.processed import Processed, sqlite_url
from bench.report import INFO, Row, median, ms, percentile, verdict
from bench.session import EXPERIMENTS_DIR, Context, Session
from tests.fakes.gemini_api import FakeGemini
from tests.fakes.telegram_api import FakeTelegram
from tests.harness import API_KEY, TOKEN
from tests.pg_server import PgServer
from tests.replicas import Delivery, Replicas
from tests.s3_server import S3Server

SCENARIO = "8 replicas"
ACK_P95_TARGET = 3.0  # seconds: the album acknowledgement p95 of each configuration
SOLO_SLACK = 0.3  # one chat's album alone: acknowledged at most this long after the debounce
SPEED_UP_TARGET = 1.6  # two replicas' p95 at least this many times better than one process
PROCESSED_TARGET = 0.8  # two replicas' burst-processed p95 at most this times one replica's
SOLO_SEED = 30_000  # the album sent alone first: other photos than the burst's


@dataclass
class Burst:
    """One configuration's run of the burst."""

    label: str
    acks: list[float]  # seconds from each album's last photo to its full acknowledgement
    fetched: list[float]  # seconds from each album's last photo to the getFile of its last
    messages: list[int]  # sendMessage calls per album
    solo: float  # one album's acknowledgement with nothing else going on
    cpu: dict[str, float]  # CPU seconds by process, over `cpu_wall`
    cpu_wall: float  # first photo queued to the last acknowledgement trusted (chats quiet)
    seconds: float  # the burst's wall time: first photo queued to the last acknowledgement
    deliveries: list[Delivery] = field(default_factory=list)  # webhook POSTs (replicas only)
    replicas: int = 0
    processed: list[float] = field(default_factory=list)  # last photo to every model copy
    unprocessed: int = 0  # chats whose copies were never all seen stored

    @property
    def p95(self) -> float:
        return percentile(self.acks, 95)


class CpuClock:
    """CPU seconds (user + system) of some processes, read at the start and at the end."""

    def __init__(self, pids: Mapping[str, int], postgres: int | None = None) -> None:
        self.pids = dict(pids)
        self.postgres = postgres
        self._start = self._read()
        self.started = time.monotonic()
        self.wall = 0.0

    def _read(self) -> dict[str, float]:
        times = {name: _cpu(pid) for name, pid in self.pids.items()}
        if self.postgres is not None:
            times["PostgreSQL"] = _tree_cpu(self.postgres)
        return times

    def used(self) -> dict[str, float]:
        """The CPU seconds each process used since this clock was made."""
        end = self._read()
        self.wall = time.monotonic() - self.started
        return {name: end[name] - self._start.get(name, 0.0) for name in end}


def _cpu(pid: int) -> float:
    times = psutil.Process(pid).cpu_times()
    return float(times.user + times.system)


def _tree_cpu(pid: int) -> float:
    """A server and its children (PostgreSQL's backends), those it already reaped included."""
    root = psutil.Process(pid)
    times = root.cpu_times()
    total = float(times.user + times.system + times.children_user + times.children_system)
    for child in root.children(recursive=True):
        try:
            total += _cpu(child.pid)
        except psutil.Error:
            pass  # a backend that ended meanwhile
    return total


async def run(ctx: Context) -> list[Row]:
    """The burst on one process, then on one and two replicas of a shared configuration."""
    plan = ctx.plan
    photos = media.photos(media.COMPRESSED, plan.chats * plan.album)
    alone = media.photos(media.COMPRESSED, plan.album, first=SOLO_SEED)
    prepare_photos([*photos, *alone])
    embedded = await _embedded(ctx, photos, alone)
    pg = PgServer()
    s3: S3Server | None = None
    try:
        await asyncio.to_thread(pg.start)
        s3 = await asyncio.to_thread(S3Server)
        one = await _replicated(ctx, 1, pg, s3, photos, alone)
        two = await _replicated(ctx, 2, pg, s3, photos, alone)
    finally:
        if s3 is not None:
            await asyncio.to_thread(s3.stop)
        await asyncio.to_thread(pg.stop)
    return _rows(ctx, embedded, one, two)


async def _burst(
    ctx: Context,
    travellers: Sequence[Traveller],
    photos: Sequence[bytes],
    deliver: Callable[[], Coroutine[Any, Any, list[Delivery]]] | None,
) -> tuple[list[Ack], list[float], list[Delivery]]:
    """Every traveller sends its album at once; wait for every full acknowledgement.

    Returns the acknowledgements, when each album's last photo was queued, and the webhook
    deliveries (with `deliver`: Telegram's part, run beside the waiting)."""
    album = ctx.plan.album
    sent = [t.send_photos(photos[i * album : (i + 1) * album]) for i, t in enumerate(travellers)]
    delivery = asyncio.create_task(deliver()) if deliver is not None else None
    try:
        acks = await asyncio.gather(
            *(t.acknowledged(s, ctx.plan.ack_quiet) for t, s in zip(travellers, sent, strict=True))
        )
    finally:
        deliveries = await delivery if delivery is not None else []
    return list(acks), [s.at for s in sent], deliveries


def _burst_result(
    label: str,
    acks: Sequence[Ack],
    sent_at: Sequence[float],
    solo: float,
    clock: CpuClock,
    deliveries: list[Delivery],
    replicas: int = 0,
) -> Burst:
    return Burst(
        label=label,
        acks=[a.at - s for a, s in zip(acks, sent_at, strict=True)],
        fetched=[a.last_fetch - s for a, s in zip(acks, sent_at, strict=True)],
        messages=[a.messages for a in acks],
        solo=solo,
        cpu=clock.used(),
        cpu_wall=clock.wall,
        seconds=max(a.at for a in acks) - min(sent_at),
        deliveries=deliveries,
        replicas=replicas,
    )


async def _embedded(ctx: Context, photos: Sequence[bytes], alone: Sequence[bytes]) -> Burst:
    """One process on SQLite and DATA_DIR/media, polling: scenario 1's bot."""
    plan = ctx.plan
    async with Session(ctx, "replicas-embedded") as session:
        first = session.traveller()
        (solo,), (solo_at,), _ = await _burst(ctx, [first], alone, None)
        travellers = [session.traveller() for _ in range(plan.chats)]
        assert session.process is not None
        clock = CpuClock({"bot": session.process.pid, "bench (fakes)": os.getpid()})
        with _processed(ctx, sqlite_url(session.db_path), travellers) as processed:
            acks, sent_at, _ = await _burst(ctx, travellers, photos, None)
            burst = _burst_result("one process", acks, sent_at, solo.at - solo_at, clock, [])
            await _wait_processed(processed, travellers, sent_at, burst)
        await session.stop_process()
    return burst


async def _replicated(
    ctx: Context,
    count: int,
    pg: PgServer,
    s3: S3Server,
    photos: Sequence[bytes],
    alone: Sequence[bytes],
) -> Burst:
    """`count` webhook replicas on a fresh database and bucket, fed round-robin."""
    plan = ctx.plan
    name = f"replicas-{count}"
    tg = FakeTelegram(token=TOKEN)
    gemini = FakeGemini(api_key=API_KEY)
    workdir = Path(tempfile.mkdtemp(prefix=f"bench-{name}-"))
    watcher = Watcher(tg)
    database = await asyncio.to_thread(pg.new_database)
    bucket = await asyncio.to_thread(s3.new_bucket)

    def base(data_dir: Path) -> dict[str, str]:
        env = environment(tg, gemini, data_dir, ctx.debounce)
        if ctx.experiments:
            env["BENCH_EXPERIMENT"] = ",".join(ctx.experiments)
            env["PYTHONPATH"] = os.pathsep.join([str(EXPERIMENTS_DIR), env["PYTHONPATH"]])
        return env

    users = iter(range(10_001, 10_001 + plan.chats + 1))

    def traveller() -> Traveller:
        user_id = next(users)
        return Traveller(tg, watcher, user_id, f"User{user_id}")

    await tg.start()
    await gemini.start()
    await watcher.__aenter__()
    replicas: Replicas | None = None
    profilers: list[subprocess.Popen[bytes]] = []
    try:
        replicas = Replicas(
            tg, gemini, workdir, count,
            database_url=database, media_env=bucket.env("media/"), environment=base,
        )  # fmt: skip
        await replicas.start()
        if ctx.profile:
            stamp = time.strftime("%H%M%S")
            for i in range(count):
                output = ctx.results / "profiles" / f"{name}-{i}-{stamp}.txt"
                profilers.append(attach_profiler(replicas.pid(i), output))
        deliver = replicas.deliver  # round-robin
        (solo,), (solo_at,), _ = await _burst(ctx, [traveller()], alone, deliver)
        travellers = [traveller() for _ in range(plan.chats)]
        pids = {f"replica {i}": replicas.pid(i) for i in range(count)}
        pids |= {"bench (fakes)": os.getpid(), "moto": s3.process.pid}
        clock = CpuClock(pids, postgres=_postmaster(pg))
        if ctx.profile_burst:
            stamp = time.strftime("%H%M%S")
            for i in range(count):
                output = ctx.results / "profiles" / f"{name}-{i}-burst-{stamp}.txt"
                profilers.append(attach_profiler(replicas.pid(i), output, ctx.profile_burst))
        with _processed(ctx, database, travellers) as processed:
            acks, sent_at, deliveries = await _burst(ctx, travellers, photos, deliver)
            label = {1: "one replica", 2: "two replicas"}.get(count, f"{count} replicas")
            burst = _burst_result(label, acks, sent_at, solo.at - solo_at, clock, deliveries, count)
            await _wait_processed(processed, travellers, sent_at, burst)
        codes = await replicas.stop()
        if any(code != 0 for code in codes):
            tails = "\n".join(replicas.output(i)[-2000:] for i in range(count))
            raise RuntimeError(f"replicas exited with {codes}:\n{tails}")
    finally:
        if replicas is not None:
            await replicas.stop()
            for profiler in profilers:
                await asyncio.to_thread(profiler.wait, 30)
            logs = ctx.results / "logs"
            logs.mkdir(parents=True, exist_ok=True)
            for i in range(len(replicas)):
                (logs / f"{name}-{i}.log").write_text(replicas.output(i))
        await watcher.__aexit__(None, None, None)
        await tg.stop()
        await gemini.stop()
        shutil.rmtree(workdir, ignore_errors=True)
    return burst


def _processed(ctx: Context, url: str, travellers: Sequence[Traveller]) -> Processed:
    """A watch on the database for the model copies of every traveller's album."""
    return Processed(url, {t.chat_id: ctx.plan.album for t in travellers})


async def _wait_processed(
    processed: Processed,
    travellers: Sequence[Traveller],
    sent_at: Sequence[float],
    burst: Burst,
) -> None:
    """After the acknowledgements (and the CPU clock read): wait for the copies still made."""
    await processed.finished(TIMEOUT)
    sent = {t.chat_id: at for t, at in zip(travellers, sent_at, strict=True)}
    burst.processed, burst.unprocessed = processed.since(sent)


def _postmaster(pg: PgServer) -> int:
    """The PostgreSQL server's process id (the first line of postmaster.pid)."""
    return int((pg.data / "postmaster.pid").read_text().split()[0])


def _rows(ctx: Context, embedded: Burst, one: Burst, two: Burst) -> list[Row]:
    plan = ctx.plan
    workload = f"{plan.chats} chats × {plan.album} photos at once, debounce {ctx.debounce:g} s"
    configs = (
        (embedded, "one process (SQLite + disk, polling)"),
        (one, "one replica (webhook, PostgreSQL + bucket)"),
        (two, "two replicas (webhook, same PostgreSQL + bucket, round-robin)"),
    )
    rows: list[Row] = []
    for burst, label in configs:
        judged = True  # issue 21: every configuration
        rows.append(
            Row(
                SCENARIO,
                f"album ack p50 / p95, {label}" + (f"; {workload}" if burst is embedded else ""),
                f"{ms(median(burst.acks))} / {ms(burst.p95)}",
                f"p95 <= {ms(ACK_P95_TARGET)}" if judged else "-",
                verdict(burst.p95 <= ACK_P95_TARGET) if judged else INFO,
                {"seconds": burst.acks, "fetched": burst.fetched, "solo": burst.solo},
            )
        )
    over_one = embedded.p95 / two.p95
    over_replica = one.p95 / two.p95
    rows += [
        Row(
            SCENARIO,
            "speed-up of two replicas over one process (ack p95 ratio)",
            f"{over_one:.2f}x",
            f">= {SPEED_UP_TARGET:g}x",
            verdict(over_one >= SPEED_UP_TARGET),
            {"ratio": over_one},
        ),
        Row(
            SCENARIO,
            "speed-up of two replicas over one replica (ack p95 ratio)",
            f"{over_replica:.2f}x",
            data={"ratio": over_replica},
        ),
        Row(
            SCENARIO,
            "album ack of one chat alone: one process / one replica / two replicas",
            " / ".join(ms(b.solo) for b in (embedded, one, two)),
            f"each <= {ms(ctx.debounce + SOLO_SLACK)}",
            verdict(all(b.solo <= ctx.debounce + SOLO_SLACK for b in (embedded, one, two))),
            data={b.label: b.solo for b in (embedded, one, two)},
        ),
        Row(
            SCENARIO,
            "last photo to its getFile p95: one process / one replica / two replicas",
            " / ".join(ms(percentile(b.fetched, 95)) for b in (embedded, one, two)),
        ),
        Row(
            SCENARIO,
            "acknowledgement messages per album: median / max, for each",
            " ; ".join(
                f"{median(b.messages):.0f} / {max(b.messages)}" for b in (embedded, one, two)
            ),
            data={b.label: b.messages for b in (embedded, one, two)},
        ),
    ]
    for burst, label in configs:
        missing = f" ({burst.unprocessed} chats never done)" if burst.unprocessed else ""
        rows.append(
            Row(
                SCENARIO,
                f"burst processed p50 / p95 (last photo to every model copy stored), {label}",
                f"{ms(median(burst.processed))} / {ms(percentile(burst.processed, 95))}{missing}",
                data={"seconds": burst.processed, "unprocessed": burst.unprocessed},
            )
        )
    processed_ratio = percentile(two.processed, 95) / percentile(one.processed, 95)
    rows.append(
        Row(
            SCENARIO,
            "burst processed p95: two replicas / one replica",
            f"{processed_ratio:.2f}x",
            f"<= {PROCESSED_TARGET:g}x",
            verdict(processed_ratio <= PROCESSED_TARGET),
            {"ratio": processed_ratio},
        )
    )
    for burst in (one, two):
        times = [d.answered_at - d.sent_at for d in burst.deliveries]
        per = [sum(d.replica == i for d in burst.deliveries) for i in range(burst.replicas)]
        # Telegram's part takes this long whatever the bot does after the 200s: a chat's
        # updates one after the other, at most 40 requests at once (tests/replicas.py).
        delivered = max(d.answered_at for d in burst.deliveries) - min(
            d.sent_at for d in burst.deliveries
        )
        rows.append(
            Row(
                SCENARIO,
                f"{burst.label}: webhook POST to 200 p50 / p95; updates per replica; the "
                "burst's first POST to its last 200",
                f"{ms(median(times))} / {ms(percentile(times, 95))}; "
                + " + ".join(map(str, per))
                + f"; {ms(delivered)}",
                data={"seconds": times, "per_replica": per, "delivered": delivered},
            )
        )
    for burst in (embedded, one, two):
        rows.append(
            Row(
                SCENARIO,
                f"{burst.label}: CPU seconds, first photo to the last ack trusted "
                f"({burst.cpu_wall:.1f} s)",
                ", ".join(f"{name} {seconds:.1f}" for name, seconds in burst.cpu.items()),
                data={"cpu": burst.cpu, "wall": burst.cpu_wall, "burst": burst.seconds},
            )
        )
    if any(math.isnan(b.p95) for b in (embedded, one, two)):
        raise RuntimeError("a configuration measured no acknowledgement")
    return rows
