# The example leaky Go service (examples/leaky-service, standard library only).
# Build context: the repository root.
#   docker build -f deploy/leaky-service.Dockerfile -t leaky-service .
FROM golang:1-bookworm AS builder
WORKDIR /src
COPY examples/leaky-service/ ./
RUN CGO_ENABLED=0 go build -trimpath -o /out/leaky-service .

FROM debian:bookworm-slim
RUN useradd --system --uid 10761 leaky
COPY --from=builder /out/leaky-service /usr/local/bin/leaky-service
USER leaky
EXPOSE 6060
ENTRYPOINT ["/usr/local/bin/leaky-service"]
CMD ["-addr", "0.0.0.0:6060", "-mode", "heap"]
