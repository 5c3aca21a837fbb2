# The operator image: `jobmatch-operator` on an empty base holding exactly the files
# it needs. Non-root (65532), no shell; runs with a read-only root filesystem.
#
#   docker build -f images/operator.Dockerfile -t jobmatch/operator:0.1.0 \
#     --build-arg REVISION=$(git rev-parse HEAD) .
#
# scripts/images.sh builds this same file without a Docker daemon or a registry (see
# images/worker.Dockerfile).
ARG RUST_IMAGE=docker.io/library/rust:1.95-bookworm

FROM ${RUST_IMAGE} AS build
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates binutils \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY . .
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked -p jobmatch-operator --bin jobmatch-operator \
 && images/rootfs.sh /out/rootfs target/release/jobmatch-operator

FROM scratch
ARG VERSION=0.1.0
ARG REVISION=unknown
ARG SOURCE=https://github.com/jobmatch/jobmatch
COPY --from=build /out/rootfs/ /
ENV SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt
USER 65532:65532
EXPOSE 8080
ENTRYPOINT ["/usr/local/bin/jobmatch-operator"]
CMD ["run"]
LABEL org.opencontainers.image.title="jobmatch operator" \
      org.opencontainers.image.description="Reconciles JobSource and MatchSubscription into jobmatch's worker fleet" \
      org.opencontainers.image.source="${SOURCE}" \
      org.opencontainers.image.licenses="Apache-2.0" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${REVISION}"
