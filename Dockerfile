# syntax=docker/dockerfile:1
# The forecast service and the retraining job in one image:
#   docker build -t forecaster .
#   docker run -p 8000:8000 -v forecaster-models:/data/models forecaster
# See docker-compose.yml for the api + retrain setup.

# ---- build: install the locked dependencies into a virtualenv, outside the final image
FROM python:3.11-slim AS build
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
RUN python -m venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH
WORKDIR /src
# The exact, hash-checked versions of requirements.lock (`make lock`), not the newest releases
# pyproject.toml's ranges allow. This layer depends on the lock file alone, so changes to the
# sources reuse it.
COPY requirements.lock ./
RUN pip install --require-hashes -r requirements.lock
COPY pyproject.toml README.md ./
COPY forecaster ./forecaster
COPY service ./service
# --no-build-isolation builds with the locked setuptools; --no-deps as they are all installed.
RUN pip install --no-deps --no-build-isolation . && pip check

# ---- runtime
FROM python:3.11-slim
# tcmalloc: XLA:CPU maps and frees large buffers every step; glibc malloc turns that into page
# faults (about 30% of training throughput measured here). The symlink makes LD_PRELOAD the
# same path on amd64 and arm64.
RUN apt-get update \
    && apt-get install -y --no-install-recommends libtcmalloc-minimal4 \
    && rm -rf /var/lib/apt/lists/* \
    && ln -s "$(find /usr/lib -name libtcmalloc_minimal.so.4 | head -n 1)" \
        /usr/local/lib/libtcmalloc_minimal.so.4
ENV LD_PRELOAD=/usr/local/lib/libtcmalloc_minimal.so.4 \
    PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    FORECASTER_REGISTRY=/data/models \
    FORECASTER_COMPILATION_CACHE_DIR=/data/jax-cache \
    FORECASTER_PORT=8000
RUN useradd --system --uid 10001 --user-group --create-home --home-dir /home/app app \
    && mkdir -p /data/models /data/jax-cache && chown -R app:app /data
COPY --from=build /opt/venv /opt/venv
# Models shipped with the image seed the registry; a named volume mounted on /data/models is
# filled with them the first time it is used, and keeps what retraining publishes afterwards.
COPY --chown=app:app models/ /data/models/
WORKDIR /home/app
USER app
EXPOSE 8000
HEALTHCHECK --interval=15s --timeout=5s --start-period=120s --retries=3 \
    CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8000/readyz', timeout=4)"]
CMD ["forecaster", "serve", "--host", "0.0.0.0"]
