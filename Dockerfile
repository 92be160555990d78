# edudesk: the same service as `make run`, with its state only in the /data volume.
#
# The image installs edudesk from wheels built beforehand, never from the source tree, and never asks a
# package index: that is also how an air-gapped school builds it.
#   pip wheel -w wheelhouse .                 # on a machine with PyPI (or a mirror): edudesk + every dependency
#   docker build -t edudesk .                 # FROM python:3.11-slim (Docker Hub)
# Without Docker Hub, from Debian's packages (debootstrap; README "Chạy bằng Docker"):
#   scripts/make-base-image.sh && docker build --build-arg BASE=edudesk-base:bookworm -t edudesk .
# The wheels must suit the base: CPython 3.11, glibc >= their manylinux tag (bookworm and 3.11-slim: 2.36).
ARG BASE=python:3.11-slim

FROM ${BASE} AS install
# The wheels stay in this stage only; the label lets a test run remove the stage it leaves behind.
LABEL edudesk.stage=install
# Both bases have `python3` with venv (Debian's python3-venv in the debootstrap base).
COPY wheelhouse /wheelhouse
RUN python3 -m venv /opt/edudesk \
 && /opt/edudesk/bin/pip install --no-index --find-links /wheelhouse --no-cache-dir edudesk \
 && /opt/edudesk/bin/pip uninstall --yes pip

FROM ${BASE}
COPY --from=install /opt/edudesk /opt/edudesk
RUN useradd --system --uid 10001 --user-group --home-dir /data --no-create-home --shell /usr/sbin/nologin edudesk \
 && install -d -o edudesk -g edudesk -m 0700 /data

# No config file is needed: built-in defaults (a demo school), then /data/config.toml if there is one (from
# `edudesk init --config /data/config.toml`), then EDUDESK_<SECTION>__<KEY> of the environment, which wins.
# Secrets come from the environment too (EDUDESK_SECRET_KEY, EDUDESK_DATABASE_URL, ...: config.toml's *_env).
ENV PATH=/opt/edudesk/bin:$PATH \
    PYTHONUNBUFFERED=1 PYTHONDONTWRITEBYTECODE=1 \
    EDUDESK_GENERAL__DATA_DIR=/data \
    EDUDESK_SMTPD__HOST=0.0.0.0 \
    EDUDESK_WEB__HOST=0.0.0.0

USER edudesk
WORKDIR /data
VOLUME ["/data"]
EXPOSE 2525 8080
# The console answers /healthz as soon as it listens; minbase has no curl, the venv's Python asks.
HEALTHCHECK --interval=10s --timeout=3s --start-period=10s --retries=3 \
    CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8080/healthz', timeout=2)"]
# `run` applies pending migrations first (one process, not two: the start stays well under 5 s). Replicas on
# one PostgreSQL run `edudesk db migrate` once before they start (deploy/compose.yaml). edudesk is PID 1 and
# handles docker stop's SIGTERM; `docker run --init` (compose: init: true) also reaps stray children.
CMD ["edudesk", "run"]
