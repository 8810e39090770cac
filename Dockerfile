# connector: API, job worker and scheduler in one process (`connector serve`).
#
#   docker build -t connector .
#   docker run -p 8080:8080 -v connector-data:/data connector
#
# Without CONNECTOR_DATABASE_URL the database is a SQLite file in the /data volume, and without
# CONNECTOR_SECRET_KEY the credential key is generated there too: keep that volume. The first start
# writes an initial admin API key to /data/initial-admin.key (mode 0600, never to the log); read it
# (then delete it) with
#   docker run --rm -v connector-data:/data --entrypoint cat connector /data/initial-admin.key
# Other commands run the same image, e.g.
#   docker run --rm -v connector-data:/data connector sync

# Build stage: turn the build context into a wheel so no source tree lands in the final image.
FROM python:3.11-slim AS build
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_CACHE_DIR=1
WORKDIR /src
COPY pyproject.toml README.md ./
COPY adapters ./adapters
COPY connector ./connector
COPY mappings ./mappings
COPY migrations ./migrations
RUN pip wheel --no-deps --wheel-dir /wheels .

FROM python:3.11-slim
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1
COPY --from=build /wheels /wheels
RUN pip install /wheels/*.whl && rm -rf /wheels

# A fixed numeric uid/gid so orchestrators can verify "runs as non-root" and volumes can be chowned.
RUN groupadd --system --gid 10001 connector \
    && useradd --system --uid 10001 --gid connector --home-dir /data --no-create-home \
        --shell /usr/sbin/nologin connector \
    && mkdir /data && chown connector:connector /data

ENV CONNECTOR_HOST=0.0.0.0 \
    CONNECTOR_PORT=8080 \
    CONNECTOR_DATA_DIR=/data \
    CONNECTOR_LOG_FORMAT=json
VOLUME ["/data"]
WORKDIR /data
USER 10001:10001
EXPOSE 8080

# slim has no curl; urlopen raises (exit 1) on a refused connection or a non-2xx answer.
HEALTHCHECK --interval=30s --timeout=5s --start-period=30s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:' + os.environ.get('CONNECTOR_PORT', '8080') + '/healthz', timeout=4)"]

ENTRYPOINT ["connector"]
CMD ["serve"]
