# srdd node image: the Go binary, Java 17 and the pinned PySpark.
#   docker build -t srdd:dev --build-arg VERSION=$(git describe --always --dirty) --build-arg REVISION=$(git rev-parse HEAD) .
# The same setup as `make run` (README, "Two commands"): Java 17+, a Python
# venv with sparkbridge/python/requirements.txt's runtime pins, and
# `srdd server --python <venv>/bin/python`. deploy/check/manifests_test.go
# checks that this file and requirements.txt agree.

FROM golang:1.26-bookworm AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
ARG VERSION=dev
ARG REVISION=unknown
RUN CGO_ENABLED=0 go build -trimpath -ldflags "-X main.version=${VERSION} -X github.com/srdd/srdd/metrics.revision=${REVISION}" -o /out/srdd ./cmd/srdd

FROM debian:bookworm-slim
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
      openjdk-17-jre-headless python3 python3-venv procps tini ca-certificates \
 && rm -rf /var/lib/apt/lists/*
# Runtime pins only (pyspark, msgpack); the test-only packages stay out.
COPY sparkbridge/python/requirements.txt /opt/srdd/requirements.txt
RUN grep -E '^(pyspark|msgpack)==' /opt/srdd/requirements.txt > /opt/srdd/runtime.txt \
 && python3 -m venv /opt/srdd/venv \
 && /opt/srdd/venv/bin/pip install --no-cache-dir -r /opt/srdd/runtime.txt
COPY --from=build /out/srdd /usr/local/bin/srdd
# The node runs as root only to start session code (interpreters, batch
# drivers) as unprivileged uids: each live session and batch driver gets
# its own uid of 100000-100063 (--interpreter-uids; accounts srdd-UID,
# group srdd-uids 100000, no login), so sessions of different users cannot
# reach each other's memory, files or tokens, and none reads the node's
# keys, users file or Raft dir (deploy/README.md, "Who runs as whom";
# docs/ARCHITECTURE.md, "Sessions hold no secret"). /opt/srdd/venv is
# root's and world-readable, so every uid runs its Python. The data dir is
# root's, 0700; the node opens it to the uids' group for traversal only.
# srdd (10001) runs Spark's own master and worker in docker-compose.
RUN groupadd --system --gid 10001 srdd \
 && useradd --system --uid 10001 --gid 10001 --home-dir /nonexistent --no-create-home --shell /usr/sbin/nologin srdd \
 && groupadd --system --gid 100000 srdd-uids \
 && for i in $(seq 100000 100063); do useradd --system --no-log-init --uid $i --gid 100000 --home-dir /nonexistent --no-create-home --shell /usr/sbin/nologin srdd-$i; done \
 && install -d -m 0700 -o root -g root /var/lib/srdd
WORKDIR /var/lib/srdd
VOLUME /var/lib/srdd
EXPOSE 8998 8999
ENV JAVA_HOME=/usr/lib/jvm/java-17-openjdk-amd64
ENTRYPOINT ["/usr/bin/tini", "--", "/usr/local/bin/srdd", "server", "--python", "/opt/srdd/venv/bin/python", "--data-dir", "/var/lib/srdd", "--interpreter-uids", "100000-100063"]
# --insecure: a container must bind 0.0.0.0; give --auth-file (README,
# "Securing srdd") to serve anything but a trusted network.
CMD ["--http-addr", "0.0.0.0:8998", "--raft-addr", "0.0.0.0:8999", "--insecure"]
