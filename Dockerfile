# syntax=docker/dockerfile:1
# Build:  docker build -t kling-discord-bot .
# Run:    docker run -d --name kling-bot --env-file .env -v kling-data:/app/data kling-discord-bot

FROM python:3.11-slim AS build
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_CACHE_DIR=1
WORKDIR /app
COPY requirements.lock .
RUN python -m venv /opt/venv \
 && /opt/venv/bin/pip install --require-hashes --no-deps -r requirements.lock

FROM python:3.11-slim
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    HEARTBEAT_FILE=/app/data/heartbeat
RUN useradd --create-home --uid 10001 kling
WORKDIR /app
COPY --from=build /opt/venv /opt/venv
COPY --chown=kling:kling . .
RUN mkdir -p /app/data && chown kling:kling /app/data
USER kling
VOLUME ["/app/data"]
HEALTHCHECK --interval=60s --timeout=10s --start-period=90s --retries=3 CMD ["python", "healthcheck.py"]
CMD ["python", "bot.py"]
