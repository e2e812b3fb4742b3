# clientpulse image: one image for every role (init, worker, generator, ad-hoc CLI).
#   docker build -t clientpulse:local .
#   docker run --rm clientpulse:local clientpulse --help
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

# Unprivileged runtime user; /data (CLIENTPULSE_DATA_DIR) is created here so that a named volume
# mounted on it starts out owned by that user.
RUN groupadd --system --gid 10001 clientpulse \
    && useradd --system --uid 10001 --gid clientpulse --home-dir /home/clientpulse --create-home \
       --shell /usr/sbin/nologin clientpulse \
    && mkdir -p /data \
    && chown clientpulse:clientpulse /data

WORKDIR /app

# Dependencies first, read from pyproject.toml alone: this layer is rebuilt only when it changes.
COPY pyproject.toml ./
RUN python -c "import tomllib; print('\n'.join(tomllib.load(open('pyproject.toml', 'rb'))['project']['dependencies']))" \
       > /tmp/requirements.txt \
    && pip install -r /tmp/requirements.txt \
    && rm /tmp/requirements.txt

# Then our own code; its dependencies are already installed.
COPY . .
RUN pip install --no-deps . \
    && rm -rf build ./*.egg-info

USER clientpulse
ENV CLIENTPULSE_DATA_DIR=/data
# faust web server of `clientpulse worker` (CLIENTPULSE_WORKER_WEB_PORT)
EXPOSE 6066

CMD ["clientpulse", "worker"]
