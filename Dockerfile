# photostory: one bot process per container. Configured only by environment variables
# (see README.md and .env.example); media and the SQLite file live in /data unless
# DATABASE_URL / MEDIA_URL point at PostgreSQL and an S3-compatible store.
FROM python:3.11-slim AS build
WORKDIR /src
COPY pyproject.toml setup.py README.md ./
COPY bot ./bot
COPY storage ./storage
COPY prompts ./prompts
# Wheels of the bot and every dependency (PyAV and pillow-heif ship their codecs inside).
RUN pip wheel --no-cache-dir --wheel-dir /wheels .

FROM python:3.11-slim
RUN useradd --create-home --uid 10001 --shell /usr/sbin/nologin photostory \
    && mkdir /data && chown photostory /data
COPY --from=build /wheels /wheels
RUN pip install --no-cache-dir --no-index --find-links /wheels photostory && rm -rf /wheels
USER photostory
WORKDIR /home/photostory
ENV DATA_DIR=/data \
    PYTHONUNBUFFERED=1
VOLUME /data
# Webhook mode listens on WEBHOOK_PORT (8080 by default); polling opens a port only for
# HEALTH_PORT. Both answer GET /healthz.
EXPOSE 8080
STOPSIGNAL SIGTERM
CMD ["python", "-m", "bot"]
