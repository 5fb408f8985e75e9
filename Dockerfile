# syntax=docker/dockerfile:1
# leasegate admission webhook image.
#
#   docker build -t leasegate-webhook:0.1.0 \
#     --build-arg VERSION=0.1.0 --build-arg REVISION="$(git rev-parse HEAD)" .
#
# Stage 1 builds the project's wheel and a virtualenv with it and its runtime
# dependencies only; stage 2 is a clean slim Python with that virtualenv, run
# as a fixed non-root UID. No HEALTHCHECK: Kubernetes probes /healthz and
# /readyz on the health port (see charts/leasegate).

ARG PYTHON_IMAGE=python:3.11-slim-bookworm

FROM ${PYTHON_IMAGE} AS builder
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONDONTWRITEBYTECODE=1
WORKDIR /src
# Only what the wheel is built from (see .dockerignore): no tests, tools or docs.
COPY pyproject.toml README.md ./
COPY lockcore/ lockcore/
COPY webhook/ webhook/
# The wheel, then a pip-less virtualenv holding it and its runtime dependencies
# (no [test] extras), installed by the builder's pip from outside the venv.
RUN python -m pip wheel --no-deps --wheel-dir /wheels . \
    && python -m venv --without-pip /opt/leasegate \
    && python -m pip --python /opt/leasegate/bin/python install --no-compile /wheels/leasegate-*.whl \
    && /opt/leasegate/bin/python -c "import webhook.serve, lockcore"

FROM ${PYTHON_IMAGE} AS runtime
ARG VERSION=0.1.0
ARG REVISION=unknown
ARG CREATED=unknown
LABEL org.opencontainers.image.title="leasegate-webhook" \
      org.opencontainers.image.description="Validating admission webhook enforcing Lease-based transaction locks on Kubernetes objects" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${REVISION}" \
      org.opencontainers.image.created="${CREATED}" \
      org.opencontainers.image.licenses="Apache-2.0" \
      org.opencontainers.image.source="https://example.invalid/leasegate" \
      org.opencontainers.image.base.name="docker.io/library/python:3.11-slim-bookworm"

# A fixed numeric UID/GID, so runAsNonRoot can verify it without /etc/passwd.
RUN groupadd --system --gid 10001 leasegate \
    && useradd --system --uid 10001 --gid 10001 --no-create-home \
       --home-dir /nonexistent --shell /usr/sbin/nologin leasegate

COPY --from=builder /opt/leasegate /opt/leasegate

# gunicorn runs inside leasegate-webhook; these are its settings (webhook/settings.py),
# overridden by the chart's values. The only writable path is /tmp (an emptyDir in the
# chart, under a read-only root): HOME points there for gunicorn's control socket.
ENV VIRTUAL_ENV=/opt/leasegate \
    HOME=/tmp \
    PATH=/opt/leasegate/bin:/usr/local/bin:/usr/bin:/bin \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    LEASEGATE_BIND_ADDRESS=0.0.0.0 \
    LEASEGATE_PORT=8443 \
    LEASEGATE_HEALTH_PORT=8080 \
    LEASEGATE_WORKERS=2 \
    LEASEGATE_THREADS=4 \
    LEASEGATE_GRACEFUL_TIMEOUT_SECONDS=25 \
    LEASEGATE_KEEPALIVE_SECONDS=75 \
    LEASEGATE_LOG_LEVEL=INFO

USER 10001:10001
WORKDIR /tmp
EXPOSE 8443 8080
ENTRYPOINT ["/opt/leasegate/bin/leasegate-webhook"]
CMD []
