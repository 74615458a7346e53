"""The deployment files agree with the product: what the Dockerfile packs, what compose.yaml says.

No container runs here (this machine has no Docker), so these tests check what can be checked
without one: the wheel the Dockerfile installs holds every module, prompt and template and runs
from outside the source tree; the Dockerfile copies every package the wheel is built from; and
compose.yaml's bot services, read with .env.example the way Compose reads them, give settings the
product accepts, pointing at the services the same file defines (database, bucket, proxy paths,
health checks)."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import tomllib
import zipfile
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import yaml
from dotenv import dotenv_values

from bot.config import Settings
from bot.i18n import DEFAULT, DOMAIN, LANGUAGES
from bot.telegram.health import HEALTH_PATH
from bot.telegram.webhook import webhook_path

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("bot", "storage", "prompts")


def _source_modules() -> list[str]:
    modules = []
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            parts = path.relative_to(ROOT).with_suffix("").parts
            if "__pycache__" in parts:
                continue
            modules.append(".".join(parts[:-1] if parts[-1] == "__init__" else parts))
    return modules


def _data_files() -> list[str]:
    """Every file of the packages that is not Python: prompts, templates."""
    return sorted(
        str(path.relative_to(ROOT))
        for package in PACKAGES
        for path in (ROOT / package).rglob("*")
        if path.is_file() and path.suffix not in {".py", ".pyc"} and "__pycache__" not in path.parts
    )


def _dockerfile() -> list[str]:
    lines = (ROOT / "Dockerfile").read_text().replace("\\\n", " ").splitlines()
    return [line.strip() for line in lines if line.strip() and not line.lstrip().startswith("#")]


def _stages() -> tuple[list[str], list[str]]:
    lines = _dockerfile()
    second = [i for i, line in enumerate(lines) if line.startswith("FROM")][1]
    return lines[:second], lines[second:]


def _build_copies() -> list[tuple[str, str]]:
    """The build stage's COPY lines as (source, destination relative to WORKDIR)."""
    copies = []
    for line in _stages()[0]:
        if line.startswith("COPY "):
            *sources, target = line.split()[1:]
            for source in sources:
                dest = target if not target.endswith("/") else target + Path(source).name
                copies.append((source.rstrip("/"), dest.removeprefix("./").rstrip("/")))
    return copies


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The wheel the Dockerfile's build stage makes, from only what it copies."""
    context = tmp_path_factory.mktemp("context")
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc", "*.egg-info")
    for source, dest in _build_copies():
        if (ROOT / source).is_dir():
            shutil.copytree(ROOT / source, context / dest, ignore=ignore)
        else:
            shutil.copy2(ROOT / source, context / dest)
    out = tmp_path_factory.mktemp("wheel")
    # Its `pip wheel .`, without the dependencies (they are installed here).
    built = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "--no-build-isolation",
         "--wheel-dir", str(out), "."],
        cwd=context, timeout=120, capture_output=True, text=True,
    )  # fmt: skip
    assert built.returncode == 0, f"the image's wheel does not build:\n{built.stderr}"
    (wheel_file,) = out.glob("photostory-*.whl")
    return wheel_file


def test_the_wheel_holds_every_module_prompt_and_template(wheel: Path) -> None:
    names = set(zipfile.ZipFile(wheel).namelist())
    for module in _source_modules():
        path = module.replace(".", "/")
        assert f"{path}.py" in names or f"{path}/__init__.py" in names, module
    data = _data_files()
    assert data, "no prompt or template found in the source tree"
    missing = [name for name in data if name not in names]
    assert not missing, f"not in the wheel the Dockerfile installs: {missing}"


def test_the_wheel_holds_a_compiled_catalog_for_every_language(wheel: Path) -> None:
    names = set(zipfile.ZipFile(wheel).namelist())
    for language in LANGUAGES:
        if language == DEFAULT:
            continue  # the source language: the strings in the code
        assert f"bot/locales/{language}/LC_MESSAGES/{DOMAIN}.mo" in names, language
    # Compiled by the build (setup.py), never committed.
    tracked = subprocess.run(
        ["git", "ls-files", "*.mo"], cwd=ROOT, capture_output=True, text=True, timeout=60
    )
    assert tracked.returncode == 0 and tracked.stdout.strip() == ""


def test_the_installed_wheel_runs_away_from_the_source_tree(wheel: Path, tmp_path: Path) -> None:
    unpacked = tmp_path / "site"
    zipfile.ZipFile(wheel).extractall(unpacked)
    prompts = sorted(p.stem for p in (ROOT / "prompts").glob("*.md"))
    script = f"""
import importlib
site = {str(unpacked)!r}
for module in {_source_modules()!r}:
    loaded = importlib.import_module(module)
    assert loaded.__file__.startswith(site), (module, loaded.__file__)
import prompts
for name in {prompts!r}:
    assert prompts.render(name).strip(), name
from bot.service import export
export._templates().get_template("story.html.j2")
from bot import i18n
assert i18n.LOCALES.is_relative_to(site), i18n.LOCALES
assert (i18n.LOCALES / "ru" / "LC_MESSAGES" / "photostory.mo").exists()
with i18n.using("ru"):
    assert i18n._("Taken back.") == "Отменено."
print("ok")
"""
    # The bot's dependencies come from this interpreter; the bot itself only from the wheel.
    env = {**os.environ, "PYTHONPATH": str(unpacked)}
    run = subprocess.run(
        [sys.executable, "-P", "-c", script],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert run.returncode == 0, run.stderr
    assert run.stdout.strip() == "ok"


def test_the_dockerfile_copies_what_the_wheel_is_built_from_and_runs_the_bot_unprivileged() -> None:
    copied = {source for source, _ in _build_copies()}
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())
    patterns = project["tool"]["setuptools"]["packages"]["find"]["include"]
    packages = {p.rstrip("*") for p in patterns}
    assert packages == set(PACKAGES)
    assert packages | {"pyproject.toml", project["project"]["readme"]} <= copied
    final = _stages()[1]
    users = [line.split()[1] for line in final if line.startswith("USER ")]
    assert users and users[-1] not in {"root", "0"}
    assert final[-1] == 'CMD ["python", "-m", "bot"]'
    assert f"EXPOSE {Settings.webhook_port}" in final


_VARIABLE = re.compile(r"\$\{(?P<name>\w+)(?::(?P<op>[?-])(?P<arg>[^}]*))?\}")


def _interpolate(value: str, env: dict[str, str]) -> str:
    """Compose's ${NAME}, ${NAME:?message} and ${NAME:-default}, from the project's .env."""

    def one(match: re.Match[str]) -> str:
        name, op, arg = match["name"], match["op"], match["arg"]
        got = env.get(name, "")
        if not got and op == "?":
            raise AssertionError(f"compose would stop: {arg}")
        return got or (arg if op == "-" else "")

    return _VARIABLE.sub(one, value)


@pytest.fixture
def dotenv() -> dict[str, str]:
    """.env.example filled in as compose.yaml's header asks."""
    values = {k: v or "" for k, v in dotenv_values(ROOT / ".env.example").items()}
    values.update(
        TELEGRAM_BOT_TOKEN="123456:ABC-test",
        GEMINI_API_KEY="test-key",
        ALLOWED_USERS="*",
        BOT_DOMAIN="bot.example.com",
        WEBHOOK_SECRET="a-secret_0123456789",
    )
    return values


def _compose() -> dict[str, Any]:
    loaded = yaml.safe_load((ROOT / "compose.yaml").read_text())  # resolves the <<: merge
    assert isinstance(loaded, dict)
    return loaded


def _bot_services(compose: dict[str, Any]) -> dict[str, Any]:
    """The replicas: the services built from this repository."""
    return {name: svc for name, svc in compose["services"].items() if "build" in svc}


def _replica_settings(service: dict[str, Any], dotenv: dict[str, str]) -> Settings:
    """What the bot reads in that container: .env, then the service's environment over it."""
    assert service["env_file"] == ".env"
    own = {k: _interpolate(str(v), dotenv) for k, v in service["environment"].items()}
    return Settings.from_env({**dotenv, **own})


def test_compose_gives_each_replica_settings_the_bot_accepts(dotenv: dict[str, str]) -> None:
    compose = _compose()
    services = compose["services"]
    bots = _bot_services(compose)
    assert len(bots) >= 2, "compose.yaml should run at least two replicas"
    settings = [_replica_settings(service, dotenv) for service in bots.values()]
    first = settings[0]
    # Every replica is the same bot on the same database and bucket.
    assert all(s == first for s in settings)
    assert first.webhook_url == "https://bot.example.com/telegram"

    database = urlsplit(first.database_url or "")
    postgres = services[database.hostname]["environment"]
    assert (database.username, database.password, database.path.lstrip("/")) == (
        postgres["POSTGRES_USER"], postgres["POSTGRES_PASSWORD"], postgres["POSTGRES_DB"],
    )  # fmt: skip

    endpoint = urlsplit(first.s3_endpoint_url or "")
    store = services[endpoint.hostname]
    assert store["environment"]["MINIO_ROOT_USER"] == first.s3_access_key_id
    assert store["environment"]["MINIO_ROOT_PASSWORD"] == first.s3_secret_access_key
    assert endpoint.port == 9000
    bucket_job = next(s for s in services.values() if "mc mb" in str(s.get("entrypoint", "")))
    assert f"local/{first.media_bucket}" in bucket_job["entrypoint"]
    assert f"http://{endpoint.hostname}:{endpoint.port}" in bucket_job["entrypoint"]

    # Each replica its own /data (its scratch files and read cache are not shared).
    data_volumes = [
        volume.split(":")[0]
        for service in bots.values()
        for volume in service.get("volumes", [])
        if volume.endswith(f":{first.data_dir}")
    ]
    assert len(data_volumes) == len(bots) == len(set(data_volumes))
    assert set(data_volumes) <= set(compose["volumes"])

    # The health check asks the replica's own port and path.
    (check,) = {" ".join(service["healthcheck"]["test"]) for service in bots.values()}
    assert f"http://127.0.0.1:{first.webhook_port}{HEALTH_PATH}" in check


def test_the_proxy_sends_the_webhook_path_to_every_replica(dotenv: dict[str, str]) -> None:
    compose = _compose()
    bots = _bot_services(compose)
    settings = _replica_settings(next(iter(bots.values())), dotenv)
    caddyfile = _interpolate(compose["configs"]["caddyfile"]["content"], dotenv)
    assert caddyfile.lstrip().startswith("bot.example.com {")
    handled = re.search(r"handle (\S+) \{\s*reverse_proxy ([^{]+)\{(.*?)\}", caddyfile, re.S)
    assert handled, caddyfile
    path, upstreams, options = handled.groups()
    assert path == webhook_path(settings.webhook_url or "")
    assert sorted(upstreams.split()) == sorted(f"{b}:{settings.webhook_port}" for b in bots)
    assert f"health_uri {HEALTH_PATH}" in options
    published = compose["services"]["proxy"]["ports"]
    assert any(p.split(":")[-1] == "443" for p in published)
    assert all("ports" not in compose["services"][b] for b in bots), "replicas stay unpublished"
