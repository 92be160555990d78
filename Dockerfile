# edudesk: the same service as `make run`, with its state in the /data volume.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1
RUN useradd --create-home --uid 10001 edudesk && mkdir /data && chown edudesk /data

WORKDIR /app
COPY pyproject.toml setup.py README.md main.py ./
COPY edudesk edudesk
COPY core core
COPY mailer mailer
COPY bot bot
COPY cli cli
COPY directories directories
COPY templates templates
# A plain install: the templates travel inside the package (edudesk/templates), as in any wheel.
RUN pip install . && rm -rf /app/build && chown -R root:root /app
COPY config.toml /etc/edudesk/config.toml
RUN sed -i \
      -e 's|^data_dir = "data"|data_dir = "/data"|' \
      -e '/^\[smtpd\]/,/^\[/ s|^host = "127.0.0.1"|host = "0.0.0.0"|' \
      -e '/^\[web\]/,/^\[/ s|^host = "127.0.0.1"|host = "0.0.0.0"|' \
      /etc/edudesk/config.toml

USER edudesk
VOLUME ["/data"]
EXPOSE 2525 8080
CMD ["sh", "-c", "edudesk --config /etc/edudesk/config.toml db migrate && exec edudesk --config /etc/edudesk/config.toml run"]
