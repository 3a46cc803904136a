# syntax=docker/dockerfile:1
# The image that the pods of `cronfile render kubernetes` run: cronfile on a slim Python,
# nothing else. Build it from the repo root and push it where the cluster pulls from:
#
#   docker build -t ghcr.io/acme/cronfile:0.1.0 .
#   docker push ghcr.io/acme/cronfile:0.1.0
#
# Agent jobs need their agent CLI (codex, claude, gemini, llm) on PATH too: build FROM
# this image and install it (docs/kubernetes.md, "The image").

ARG PYTHON=3.11

# Wheels for cronfile and its dependencies, so the final image holds no build tools.
FROM python:${PYTHON}-slim AS build
WORKDIR /src
COPY pyproject.toml README.md ./
COPY cronfile ./cronfile
RUN pip wheel --no-cache-dir --wheel-dir /wheels .

FROM python:${PYTHON}-slim
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1
RUN --mount=type=bind,from=build,source=/wheels,target=/wheels \
    pip install --no-index --find-links=/wheels cronfile
# A numeric non-root user: the rendered pods set runAsNonRoot, which the kubelet can only
# verify for a numeric USER. HOME is writable for agent CLIs that keep settings there.
RUN useradd --uid 10001 --user-group --create-home --home-dir /home/cronfile \
        --shell /usr/sbin/nologin cronfile
ENV HOME=/home/cronfile \
    CRONFILE_STATE_DIR=/state
USER 10001:10001
# The rendered CronJobs mount the ConfigMap here (read-only) and an emptyDir at /state,
# and run `cronfile -C /jobs --state-dir /state run NAME` as the container command.
WORKDIR /jobs
ENTRYPOINT ["cronfile"]
CMD ["--help"]
