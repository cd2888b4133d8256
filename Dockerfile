# The daemon's image: `remediator serve` as a non-root user, health-checked on /healthz.
#   docker build -t remediator .
#   docker run -p 8080:8080 -p 127.0.0.1:8081:8081 -e REMEDIATOR_ALERTMANAGER__BEARER_TOKENS=... remediator
# 8080 is the public webhook listener; 8081 the admin listener (API, console, /metrics, /readyz),
# which must only be reachable from the VPN/VPC.
# A fresh container runs in dry-run mode (the default) until REMEDIATOR_MODE=enforce is set.

# -- build: the package and its runtime dependencies, at the versions the tests ran with -----------
FROM python:3.11-slim AS build
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /src
COPY constraints.txt pyproject.toml README.md ./
COPY remediator/ remediator/
RUN python -m venv /opt/remediator \
 && /opt/remediator/bin/pip install --constraint constraints.txt .

# -- run -------------------------------------------------------------------------------------------
FROM python:3.11-slim
ENV PATH=/opt/remediator/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    REMEDIATOR_LISTEN__HOST=0.0.0.0 \
    REMEDIATOR_LISTEN__PORT=8080 \
    REMEDIATOR_ADMIN_LISTEN__HOST=0.0.0.0 \
    REMEDIATOR_ADMIN_LISTEN__PORT=8081
RUN groupadd --system --gid 10001 remediator \
 && useradd --system --uid 10001 --gid remediator --home-dir /app --no-create-home \
            --shell /usr/sbin/nologin remediator
COPY --from=build /opt/remediator /opt/remediator
WORKDIR /app
# The bundled runbook policies, owned by root: the daemon reads them and cannot change them.
COPY policies/ policies/
# var/ holds the embedded SQLite store when no PostgreSQL is configured (one container only).
RUN mkdir var && chown remediator:remediator var
USER 10001:10001
EXPOSE 8080 8081
# SIGTERM: stop accepting, finish in-flight work within engine.stop_timeout, exit 0.
STOPSIGNAL SIGTERM
# slim has no curl: Python asks /healthz, with a timeout, and fails on anything but a 2xx.
HEALTHCHECK --interval=15s --timeout=5s --start-period=20s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:' + os.environ.get('REMEDIATOR_LISTEN__PORT', '8080') + '/healthz', timeout=3)"]
ENTRYPOINT ["remediator"]
CMD ["serve"]
