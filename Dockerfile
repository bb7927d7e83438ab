# Multi-stage build of the cmksim binary. The dependency layer is cached: it is rebuilt only when
# a Cargo manifest or the lock file changes, not when the sources do.
FROM rust:1-bookworm AS build
WORKDIR /src
# 1. Dependencies only: manifests + empty crate roots, then build.
COPY Cargo.toml Cargo.lock ./
COPY crates/proto/Cargo.toml crates/proto/build.rs crates/proto/
COPY proto proto
COPY sim-config sim-config
RUN set -e; for c in sim hsm identity keyvault storage ingest scenario world cli; do \
      mkdir -p crates/$c/src; echo "" > crates/$c/src/lib.rs; done; \
    echo "fn main() {}" > crates/cli/src/main.rs
COPY crates/sim/Cargo.toml crates/sim/
COPY crates/hsm/Cargo.toml crates/hsm/
COPY crates/identity/Cargo.toml crates/identity/
COPY crates/keyvault/Cargo.toml crates/keyvault/
COPY crates/storage/Cargo.toml crates/storage/
COPY crates/ingest/Cargo.toml crates/ingest/
COPY crates/scenario/Cargo.toml crates/scenario/
COPY crates/world/Cargo.toml crates/world/
COPY crates/cli/Cargo.toml crates/cli/
COPY crates/proto/src crates/proto/src
RUN sed -i '/^\[\[bench\]\]/,/^$/d' crates/*/Cargo.toml && cargo build --release -p cmksim-cli || true
# 2. The real sources.
COPY . .
RUN touch crates/*/src/*.rs && cargo build --release -p cmksim-cli

FROM debian:bookworm-slim
RUN useradd --system --home /var/lib/cmksim cmksim && mkdir -p /var/lib/cmksim && chown cmksim /var/lib/cmksim
COPY --from=build /src/target/release/cmksim /usr/local/bin/cmksim
COPY --from=build /src/sim-config /etc/cmksim/sim-config
COPY --from=build /src/scenarios /usr/share/cmksim/scenarios
USER cmksim
VOLUME /var/lib/cmksim
# Live mode: `docker run -p 50051-50053:50051-50053 IMAGE serve all --listen 0.0.0.0:50051`, or
# docker-compose.yml for one service per container (health checks there use `cmksim health URL`).
# 50051 Key Vault + identity, 50052 storage, 50053 ingest, 9464 ingest /metrics.
ENV CMKSIM_DATA_DIR=/var/lib/cmksim
EXPOSE 50051 50052 50053 9464
ENTRYPOINT ["/usr/local/bin/cmksim"]
CMD ["--help"]
