# leakwatch: multi-stage build. Build context: the repository root.
#   docker build -f deploy/leakwatch.Dockerfile -t leakwatch .
FROM rust:1-bookworm AS builder
WORKDIR /src
# Manifests first so the dependency layer is cached across source edits.
COPY Cargo.toml Cargo.lock ./
COPY src ./src
# Compiled into the binary: the runbook page (/runbook) and `leakwatch rules`.
COPY docs ./docs
COPY alerts ./alerts
COPY benches ./benches
COPY tests ./tests
RUN cargo build --release --locked --bin leakwatch \
 && strip target/release/leakwatch

FROM debian:bookworm-slim
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates \
 && rm -rf /var/lib/apt/lists/* \
 && useradd --system --uid 10760 --home-dir /var/lib/leakwatch --create-home leakwatch \
 && install -d -o leakwatch -g leakwatch /var/lib/leakwatch/dumps
COPY --from=builder /src/target/release/leakwatch /usr/local/bin/leakwatch
USER leakwatch
WORKDIR /var/lib/leakwatch
EXPOSE 10760
ENTRYPOINT ["/usr/local/bin/leakwatch"]
CMD ["--config", "/etc/leakwatch/leakwatch.yml", "--web.listen-address", "0.0.0.0:10760"]
