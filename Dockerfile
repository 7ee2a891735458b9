FROM python:3.11-slim
WORKDIR /app
COPY pyproject.toml README.md ./
COPY notifyd ./notifyd
COPY channels ./channels
RUN pip install --no-cache-dir .
ENV NOTIFYD_DATA_DIR=/data
VOLUME /data
ENTRYPOINT ["notifyd"]
CMD ["serve", "--host", "0.0.0.0"]
