# AsyncSite Payments: one image for the API, the worker, migrations and the mock Toss
# (target `runtime`, the default), plus a `load` target that adds Locust and the scenarios, and a
# `mock-toss` target: the mock Toss alone, from its own wheel (for another merchant's QA).
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

# The mock Toss alone (target `mock-toss`): its own wheel, asyncsite-mock-toss, built from mock_toss/
# by scripts/build_mock_wheel.py, and nothing of the payment service.
#   docker build --target mock-toss -t mock-toss . && docker run -p 8090:8090 mock-toss
FROM python:3.11-slim AS mock-build
WORKDIR /src
COPY packaging/mock-toss ./packaging/mock-toss
COPY scripts/build_mock_wheel.py ./scripts/build_mock_wheel.py
COPY mock_toss ./mock_toss
RUN python scripts/build_mock_wheel.py --out /mock-wheels

FROM python:3.11-slim AS mock-toss
ENV PYTHONUNBUFFERED=1 PYTHONDONTWRITEBYTECODE=1
RUN useradd --no-create-home --uid 10001 mocktoss
COPY --from=mock-build /mock-wheels /mock-wheels
RUN pip install --no-cache-dir /mock-wheels/*.whl && rm -rf /mock-wheels
USER mocktoss
EXPOSE 8090
HEALTHCHECK --interval=10s --timeout=3s --retries=3 \
  CMD python -c "import urllib.request,sys; sys.exit(0 if urllib.request.urlopen('http://127.0.0.1:8090/_mock/health', timeout=2).status == 200 else 1)"
CMD ["mock-toss", "--host", "0.0.0.0", "--port", "8090"]

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
