# AsyncSite Payments: one image for the API, the worker, migrations and the mock Toss
# (target `runtime`, the default), plus a `load` target that adds Locust and the scenarios.
FROM python:3.11-slim AS build
WORKDIR /src
COPY pyproject.toml README.md ./
COPY app ./app
COPY mock_toss ./mock_toss
COPY loadtests ./loadtests
RUN pip install --no-cache-dir --upgrade pip \
 && pip wheel --no-cache-dir --wheel-dir /wheels .

FROM python:3.11-slim AS load
ENV PYTHONUNBUFFERED=1 PYTHONDONTWRITEBYTECODE=1
RUN useradd --create-home --uid 10001 payments
COPY --from=build /wheels /wheels
RUN pip install --no-cache-dir /wheels/*.whl "locust>=2.20" && rm -rf /wheels
COPY --chown=payments loadtests /home/payments/loadtests
USER payments
WORKDIR /home/payments
EXPOSE 8089
CMD ["locust", "-f", "/home/payments/loadtests/locustfile.py"]

FROM python:3.11-slim AS runtime
ENV PYTHONUNBUFFERED=1 PYTHONDONTWRITEBYTECODE=1 ENVIRONMENT=production
RUN useradd --create-home --uid 10001 payments
COPY --from=build /wheels /wheels
RUN pip install --no-cache-dir /wheels/*.whl && rm -rf /wheels
USER payments
WORKDIR /home/payments
EXPOSE 8000
HEALTHCHECK --interval=10s --timeout=3s --retries=3 \
  CMD python -c "import urllib.request,sys; sys.exit(0 if urllib.request.urlopen('http://127.0.0.1:8000/health/live', timeout=2).status == 200 else 1)"
CMD ["payments", "serve", "--host", "0.0.0.0", "--port", "8000", "--workers", "2"]
