# syntax=docker/dockerfile:1
#
# a2i-worker container image.
#
#   docker build -t a2i-worker .
#   docker run --init --rm -p 8080:8080 -e AWS_REGION=us-east-1 ... a2i-worker
#
# Two stages: `build` makes a virtualenv from pinned wheels (requirements/constraints.txt
# plus the project's own wheel, no dev/local extras); `runtime` copies only that virtualenv
# onto a fresh slim base. Every dependency installs from a binary wheel (--only-binary), so
# neither stage needs a compiler, and the final stage has no build tools at all.
#
# Signals: ENTRYPOINT is exec form, so `a2i-worker` itself is PID 1 and receives SIGTERM
# (STOPSIGNAL) directly; the worker installs its own SIGTERM handler (stop intake, finish or
# return in-flight work, exit within A2I_WORKER_SHUTDOWN_GRACE_SECONDS). For zombie reaping
# run with an init: `docker run --init`, ECS `initProcessEnabled: true` (set in
# deploy/cloudformation), Kubernetes needs nothing extra for a single-process container.

ARG PYTHON_IMAGE=python:3.11-slim-bookworm

FROM ${PYTHON_IMAGE} AS build
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONDONTWRITEBYTECODE=1
WORKDIR /src
RUN python -m venv /opt/venv
# Dependencies first (cached while only the source changes).
COPY requirements/constraints.txt requirements/constraints.txt
COPY pyproject.toml README.md ./
COPY src/ src/
RUN /opt/venv/bin/pip wheel --no-deps --wheel-dir /wheels . \
 && /opt/venv/bin/pip install --only-binary=:all: \
        --constraint requirements/constraints.txt /wheels/*.whl \
 && /opt/venv/bin/pip uninstall --yes pip setuptools wheel \
 && find /opt/venv -name '__pycache__' -type d -prune -exec rm -rf {} +

FROM ${PYTHON_IMAGE} AS runtime
LABEL org.opencontainers.image.title="a2i-worker" \
      org.opencontainers.image.description="Send model predictions to Amazon A2I human review at volume" \
      org.opencontainers.image.licenses="Apache-2.0"
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PATH=/opt/venv/bin:$PATH \
    A2I_WORKER_HEALTH_HOST=0.0.0.0 \
    A2I_WORKER_HEALTH_PORT=8080 \
    A2I_WORKER_LOG_FORMAT=json \
    A2I_WORKER_LEDGER_URL=sqlite:////var/lib/a2i-worker/ledger.db
# Numeric UID/GID so Kubernetes `runAsNonRoot` can verify it without /etc/passwd.
RUN groupadd --system --gid 10001 a2i \
 && useradd --system --uid 10001 --gid 10001 --no-create-home \
        --home-dir /nonexistent --shell /usr/sbin/nologin a2i \
 && mkdir -p /var/lib/a2i-worker \
 && chown 10001:10001 /var/lib/a2i-worker
COPY --from=build /opt/venv /opt/venv
# The SQLite ledger (single replica) lives here; mount a volume to keep it across restarts.
WORKDIR /var/lib/a2i-worker
USER 10001:10001
# /livez, /readyz and /metrics on A2I_WORKER_HEALTH_PORT (8080 unless set otherwise).
EXPOSE 8080
STOPSIGNAL SIGTERM
# No curl in a slim image. The probe reads A2I_WORKER_HEALTH_HOST/PORT like the worker
# does, so `docker run -e A2I_WORKER_HEALTH_PORT=9000` is still checked on the right port.
HEALTHCHECK --interval=15s --timeout=5s --start-period=30s --retries=3 \
    CMD ["python", "-m", "a2i_worker.probe", "livez"]
ENTRYPOINT ["a2i-worker"]
CMD ["run"]
