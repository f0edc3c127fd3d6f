# The aifleet operator image: python:3.11-slim, the aifleet wheel and its dependencies, a non-root user.
#
#   docker build -t aifleet-operator:0.1.0 .
#   kind load docker-image aifleet-operator:0.1.0      # or push it to your registry
#   helm install aifleet charts/aifleet-operator --set image.repository=aifleet-operator
#
# Needs BuildKit (`RUN --mount`; the default builder since Docker 23). Runs as UID/GID 65532 with nothing to
# write but /tmp (the chart mounts an emptyDir there and sets a read-only root filesystem), so it passes the Pod
# Security Standard `restricted`.

FROM python:3.11-slim AS build
WORKDIR /src
COPY pyproject.toml README.md ./
COPY operator ./operator
# The wheel of aifleet and the wheels of everything it depends on.
RUN pip wheel --no-cache-dir --wheel-dir /wheels .

FROM python:3.11-slim
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1
RUN --mount=type=bind,from=build,source=/wheels,target=/wheels \
    pip install --no-cache-dir --no-index --find-links=/wheels aifleet \
    && aifleet --version
USER 65532:65532
# 8080: /healthz and /readyz; 9090: /metrics.
EXPOSE 8080 9090
ENTRYPOINT ["aifleet", "run"]
