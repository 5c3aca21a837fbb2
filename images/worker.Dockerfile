# The CPU worker image: the `jobmatch` binary (every role) and the default model
# (all-MiniLM-L6-v2), on an empty base holding exactly the files the binary needs.
# Non-root (65532), no shell; runs with a read-only root filesystem.
#
#   docker build -f images/worker.Dockerfile -t jobmatch/worker:0.1.0 \
#     --build-arg REVISION=$(git rev-parse HEAD) .
#
# scripts/images.sh builds this same file without a Docker daemon or a registry: it
# makes the `build` stage's output on the host and gives it to buildah as the build
# context named `build`, which stands in for the stage.
# A model of your own: mount it and set JOBMATCH_MODEL_DIR to its directory.
ARG RUST_IMAGE=docker.io/library/rust:1.95-bookworm

FROM ${RUST_IMAGE} AS build
RUN apt-get update \
 && apt-get install -y --no-install-recommends python3-pip ca-certificates binutils \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY . .
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked -p jobmatch-workers --bin jobmatch \
 && scripts/fetch-model.sh /model/all-MiniLM-L6-v2 \
 && images/rootfs.sh /out/rootfs target/release/jobmatch --model /model/all-MiniLM-L6-v2

FROM scratch
ARG VERSION=0.1.0
ARG REVISION=unknown
ARG SOURCE=https://github.com/jobmatch/jobmatch
COPY --from=build /out/rootfs/ /
ENV JOBMATCH_MODEL_DIR=/models/all-MiniLM-L6-v2 \
    JOBMATCH_DATA_DIR=/var/lib/jobmatch \
    SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt
USER 65532:65532
EXPOSE 9090
ENTRYPOINT ["/usr/local/bin/jobmatch"]
CMD ["--help"]
LABEL org.opencontainers.image.title="jobmatch worker" \
      org.opencontainers.image.description="jobmatch's fetcher, embedder, matcher and notifier (CPU), with all-MiniLM-L6-v2" \
      org.opencontainers.image.source="${SOURCE}" \
      org.opencontainers.image.licenses="Apache-2.0" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${REVISION}"
