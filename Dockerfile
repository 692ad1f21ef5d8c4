# ig's node agent: `ig prometheus` with bcc from Debian and every gadget distribution of plugins/.
#   docker build -t ig:0.1.0 .           (the tag deploy/ig.yaml names: the version in pyproject.toml;
#   deploy/debian-base.sh makes the base without a registry: docker build --build-arg BASE=TAG ...)
# The agent runs with a read-only root: deploy/entrypoint.sh and ig write only /lib/modules and
# /tmp, emptyDirs in the pod (igcore/kubectl/manifests.py, WRITABLE_DIRS).
ARG BASE=debian:bookworm-slim
FROM ${BASE}

# bcc (Python bindings and its clang) from Debian; the PyPI package named bcc is unrelated.
# linux-headers: the fallback for nodes without headers (deploy/entrypoint.sh picks).
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
      python3 python3-venv python3-bpfcc util-linux "linux-headers-$(dpkg --print-architecture)" \
 && rm -rf /var/lib/apt/lists/* /var/cache/apt/archives/*.deb

COPY pyproject.toml README.md constraints.txt /src/
COPY igcore /src/igcore
COPY plugins /src/plugins
COPY deploy/wheels /wheels
# A venv that sees Debian's bcc module; ig and every plugins/*/ distribution, no test extras, at
# the versions CI ran with (constraints.txt).
# PIP_OFFLINE=1: install from deploy/wheels only (an offline build).
ARG PIP_OFFLINE=0
RUN if [ "$PIP_OFFLINE" = 1 ]; then export PIP_NO_INDEX=1; fi \
 && python3 -m venv --system-site-packages /opt/ig \
 && /opt/ig/bin/pip install --no-cache-dir --disable-pip-version-check --find-links /wheels \
      -c /src/constraints.txt /src $(ls -d /src/plugins/*/) \
 && rm -rf /src /wheels \
 && ln -s /opt/ig/bin/ig /usr/local/bin/ig

COPY deploy/entrypoint.sh /usr/local/bin/ig-entrypoint
ENTRYPOINT ["/usr/local/bin/ig-entrypoint"]
CMD ["prometheus", "--config", "@/etc/ig/config", "--watch", "--metrics-listen-address", "0.0.0.0:2223"]
