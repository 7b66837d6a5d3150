# Builds the caseway binary; the image runs any target (`serve --target ...`) or `dev`.
FROM rust:1.95-bookworm AS build
WORKDIR /src
COPY . .
RUN cargo build --release --locked -p caseway

FROM debian:bookworm-slim
RUN apt-get update && apt-get install -y --no-install-recommends ca-certificates \
    && rm -rf /var/lib/apt/lists/* && useradd --system --home /var/lib/caseway caseway \
    && mkdir -p /var/lib/caseway && chown caseway /var/lib/caseway
COPY --from=build /src/target/release/caseway /usr/local/bin/caseway
USER caseway
WORKDIR /var/lib/caseway
ENV CASEWAY_GRPC_LISTEN=0.0.0.0:50051 CASEWAY_METRICS_LISTEN=0.0.0.0:9464 CASEWAY_LOG_FORMAT=json
EXPOSE 50051 9464
ENTRYPOINT ["caseway"]
CMD ["serve", "--target", "all"]
