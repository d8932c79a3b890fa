# syntax=docker/dockerfile:1
# Build:  docker build -t kling-discord-bot .
#         buildah/podman: add --format docker (their default OCI image format has no HEALTHCHECK and
#         drops it with a warning)
# Run:    docker run -d --name kling-bot --restart unless-stopped --env-file .env \
#           -v kling-data:/app/data kling-discord-bot
# A host folder instead of the volume (-v /srv/kling:/app/data) must be writable by uid 10001:
#   sudo chown -R 10001:10001 /srv/kling

FROM python:3.11-slim AS build
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_CACHE_DIR=1
WORKDIR /build
COPY requirements.lock .
# The venv's pip and setuptools are only needed to install the lock (Python 3.11 seeds setuptools 65,
# which scanners flag for CVE-2024-6345 and CVE-2025-47273): removed once it is installed.
RUN python -m venv /opt/venv \
 && /opt/venv/bin/pip install --require-hashes --no-deps -r requirements.lock \
 && /opt/venv/bin/pip uninstall --yes pip setuptools

FROM python:3.11-slim
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    HEARTBEAT_FILE=/app/data/heartbeat \
    MPLCONFIGDIR=/tmp/matplotlib
# The base image's own installers are not needed to run the bot either (same setuptools 65).
RUN python -m pip uninstall --yes pip setuptools wheel \
 && groupadd --gid 10001 kling \
 && useradd --uid 10001 --gid 10001 --no-create-home --shell /usr/sbin/nologin kling
COPY --from=build /opt/venv /opt/venv
WORKDIR /app
# The application belongs to root and is read-only for the user that runs it (compiled here, so it
# never needs to write bytecode); only /app/data, the volume, is the bot's to write.
COPY . .
RUN python -m compileall -q /app \
 && chmod -R u=rwX,go=rX /app \
 && mkdir /app/data \
 && chown 10001:10001 /app/data
USER 10001:10001
VOLUME ["/app/data"]
# With METRICS_PORT set it asks the bot's /healthz, otherwise it reads the heartbeat file (healthcheck.py).
HEALTHCHECK --interval=60s --timeout=10s --start-period=90s --retries=3 CMD ["python", "healthcheck.py"]
CMD ["python", "bot.py"]
