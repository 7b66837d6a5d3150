# syntax=docker/dockerfile:1
# Builds the caseway binary; the image runs any target (`serve --target ...`), `migrate` or `dev`.
# The dependencies are built in a layer of their own (cargo-chef cooks them from the manifests),
# so a change of the source rebuilds only the workspace's crates.
FROM rust:1.95-bookworm AS chef
RUN cargo install cargo-chef --locked --version 0.1.78
WORKDIR /src

FROM chef AS plan
COPY . .
RUN cargo chef prepare --recipe-path recipe.json

FROM chef AS build
COPY --from=plan /src/recipe.json recipe.json
RUN cargo chef cook --release --locked --recipe-path recipe.json -p caseway
COPY . .
RUN cargo build --release --locked -p caseway \
    && install -d -o 10001 -g 10001 /out/var/lib/caseway /out/var/lib/caseway/data

# No shell, no package manager: glibc, CA certificates and the binary. The health check of a
# container is `caseway probe` (GET /readyz on the metrics port).
FROM gcr.io/distroless/cc-debian12:nonroot
COPY --from=build /src/target/release/caseway /usr/local/bin/caseway
COPY --from=build --chown=10001:10001 /out/var/lib/caseway /var/lib/caseway
# A numeric user, so a pod's `runAsNonRoot` can check it. The data directory exists, owned by
# it, so a volume mounted there starts writable.
USER 10001:10001
WORKDIR /var/lib/caseway
ENV CASEWAY_GRPC_LISTEN=0.0.0.0:50051 CASEWAY_METRICS_LISTEN=0.0.0.0:9464 CASEWAY_LOG_FORMAT=json
EXPOSE 50051 9464
HEALTHCHECK --interval=10s --timeout=5s --retries=6 CMD ["caseway", "probe"]
ENTRYPOINT ["caseway"]
CMD ["serve", "--target", "all"]
