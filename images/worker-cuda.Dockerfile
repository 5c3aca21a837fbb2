# The GPU worker image: `jobmatch` built with candle's `cuda` feature, the CUDA runtime
# libraries it loads (cudart, cuBLAS, cuRAND, from NVIDIA's PyPI wheels) and the default
# model, on an empty base. The GPU driver (libcuda.so) comes from the node, mounted by
# the NVIDIA container toolkit. Non-root (65532), no shell.
#
#   docker build -f images/worker-cuda.Dockerfile -t jobmatch/worker-cuda:0.1.0 \
#     --build-arg REVISION=$(git rev-parse HEAD) .
#
# CUDA_COMPUTE_CAP is the GPU generation the kernels are compiled for (PTX, which newer
# GPUs compile on load): 80 covers A100, H100 and later. scripts/images.sh --cuda builds
# this same file without a daemon (see images/worker.Dockerfile).
ARG RUST_IMAGE=docker.io/library/rust:1.95-bookworm

FROM ${RUST_IMAGE} AS build
ARG CUDA_COMPUTE_CAP=80
RUN apt-get update \
 && apt-get install -y --no-install-recommends python3-pip ca-certificates binutils \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY . .
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    eval "$(scripts/cuda-toolkit.sh --env --libs --dir /opt/cuda)" \
 && CUDA_COMPUTE_CAP=${CUDA_COMPUTE_CAP} cargo build --release --locked -p jobmatch-workers --bin jobmatch --features cuda \
 && scripts/fetch-model.sh /model/all-MiniLM-L6-v2 \
 && images/rootfs.sh /out/rootfs target/release/jobmatch --model /model/all-MiniLM-L6-v2 --libs "$JOBMATCH_CUDA_RUNTIME_LIBS"

FROM scratch
ARG VERSION=0.1.0
ARG REVISION=unknown
ARG SOURCE=https://github.com/jobmatch/jobmatch
COPY --from=build /out/rootfs/ /
ENV JOBMATCH_MODEL_DIR=/models/all-MiniLM-L6-v2 \
    JOBMATCH_DATA_DIR=/var/lib/jobmatch \
    SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt \
    LD_LIBRARY_PATH=/usr/local/cuda/lib:/usr/local/nvidia/lib64:/usr/lib/x86_64-linux-gnu \
    NVIDIA_VISIBLE_DEVICES=all \
    NVIDIA_DRIVER_CAPABILITIES=compute,utility
USER 65532:65532
EXPOSE 9090
ENTRYPOINT ["/usr/local/bin/jobmatch"]
CMD ["--help"]
LABEL org.opencontainers.image.title="jobmatch worker (CUDA)" \
      org.opencontainers.image.description="jobmatch's worker roles with the embedder on NVIDIA GPUs, with all-MiniLM-L6-v2" \
      org.opencontainers.image.source="${SOURCE}" \
      org.opencontainers.image.licenses="Apache-2.0" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${REVISION}"
