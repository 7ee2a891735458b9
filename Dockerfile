# notifyd's API and workers. Installs the pinned runtime set (requirements/runtime.lock), then notifyd
# itself without resolving again; the stand-ins extra is not needed by serve or worker.
FROM python:3.11-slim
WORKDIR /app
COPY requirements/runtime.lock requirements/runtime.lock
RUN pip install --no-cache-dir -r requirements/runtime.lock
COPY pyproject.toml README.md LICENSE NOTICE ./
COPY notifyd ./notifyd
COPY channels ./channels
RUN pip install --no-cache-dir --no-deps . \
    && useradd --system --uid 10001 --home-dir /data notifyd \
    && mkdir -p /data && chown notifyd /data
USER notifyd
ENV NOTIFYD_DATA_DIR=/data \
    NOTIFYD_LOG_FORMAT=json \
    PYTHONUNBUFFERED=1
VOLUME /data
# 8080: the API (and its /metrics); 9100: a worker's metrics (`notifyd worker --metrics-port 9100`).
EXPOSE 8080 9100
ENTRYPOINT ["notifyd"]
CMD ["serve", "--host", "0.0.0.0"]
