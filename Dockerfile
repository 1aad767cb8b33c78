# One image for all three services; the compose file picks the service with `command`.
FROM python:3.11-slim AS build
WORKDIR /src
COPY pyproject.toml README.md ./
COPY shared ./shared
COPY devstack ./devstack
COPY services ./services
RUN pip wheel --no-cache-dir --wheel-dir /wheels .

FROM python:3.11-slim
RUN useradd --system --uid 10001 --home-dir /app cobrowse
WORKDIR /app
COPY --from=build /wheels /wheels
RUN pip install --no-cache-dir /wheels/*.whl && rm -rf /wheels
USER cobrowse
ENV LOG_JSON=true PYTHONUNBUFFERED=1
EXPOSE 8080 8081 8082
CMD ["python", "-m", "token_service"]
