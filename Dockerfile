# syntax=docker/dockerfile:1
# One image for every aiaudit component; the Helm chart picks the service with
# `serve --services <name>`. Stages: native (builds the Rust core's wheel),
# base (shared runtime settings), builder (installs the package into a venv),
# dev (the Tilt live-update image) and runtime (last, so a plain
# `docker build .` produces it).

# The native core (libs/native) as an abi3 wheel: Rust and a C linker live in
# this stage only.
FROM rust:1-slim-bookworm AS native
RUN apt-get update && apt-get install -y --no-install-recommends python3-venv \
 && rm -rf /var/lib/apt/lists/* && python3 -m venv /opt/build
COPY libs/native /src/libs/native
RUN /opt/build/bin/pip wheel --no-cache-dir /src/libs/native -w /wheels

FROM python:3.11-slim AS base
# No .pyc writes (the root filesystem is read-only in the cluster), logs unbuffered.
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PATH=/opt/venv/bin:$PATH \
    AIAUDIT_DATA_DIR=/var/lib/aiaudit
# A fixed uid/gid: the chart's securityContext runs as 10001 and relies on it.
RUN groupadd --system --gid 10001 aiaudit \
 && useradd --system --uid 10001 --gid 10001 --home-dir /nonexistent --no-create-home \
      --shell /usr/sbin/nologin aiaudit \
 && install -d -o 10001 -g 10001 -m 0750 /var/lib/aiaudit

FROM base AS builder
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
RUN python -m venv /opt/venv
WORKDIR /src
# Only what the distribution is built from: a change elsewhere (tests, charts)
# does not invalidate this layer.
COPY pyproject.toml ./
COPY libs/common ./libs/common
COPY libs/sdk ./libs/sdk
COPY services ./services
COPY cli ./cli
COPY --from=native /wheels /wheels
RUN pip install /wheels/*.whl . && aiaudit --help > /dev/null

# Dev loop image (Tiltfile): the installed package plus a writable copy of the
# source that shadows it through PYTHONPATH, so live_update can sync edits in.
FROM base AS dev
COPY --from=builder /opt/venv /opt/venv
# /app owned by the app user: Tilt syncs edits and its restart marker in here.
RUN install -d -o 10001 -g 10001 /app
COPY --chown=10001:10001 libs /app/libs
COPY --chown=10001:10001 services /app/services
COPY --chown=10001:10001 cli /app/cli
ENV PYTHONPATH=/app/libs/common:/app/services/ingest:/app/services/search:/app/services/integrity:/app/services/alerting:/app/cli
USER 10001:10001
WORKDIR /var/lib/aiaudit
EXPOSE 50051
ENTRYPOINT ["aiaudit"]
CMD ["serve"]

FROM base AS runtime
# The venv is self-contained; nothing from the build context reaches this stage.
COPY --from=builder /opt/venv /opt/venv
USER 10001:10001
WORKDIR /var/lib/aiaudit
EXPOSE 50051
ENTRYPOINT ["aiaudit"]
CMD ["serve"]
