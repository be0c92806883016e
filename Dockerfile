# whatsapp-exporter container image.
#
#   docker build --build-arg REVISION=$(git rev-parse --short=12 HEAD) -t whatsapp-exporter .
#   docker run -p 9917:9917 \
#     -v $PWD/config.yml:/etc/whatsapp-exporter/config.yml:ro \
#     -v $PWD/token:/run/secrets/whatsapp/token:ro \
#     -v whatsapp-state:/var/lib/whatsapp-exporter \
#     whatsapp-exporter
#
# No secret is baked in: the config and the access token are mounted at run
# time. The build step is `cargo build --release --locked`, the command CI
# proves on every change.

FROM rust:1.95-bookworm AS build
WORKDIR /src
ARG REVISION=unknown
ENV WHATSAPP_EXPORTER_REVISION=${REVISION}
COPY Cargo.toml Cargo.lock build.rs ./
COPY src ./src
RUN cargo build --release --locked

FROM debian:bookworm-slim
# reqwest (rustls) trusts the system store: the Graph API needs CA certificates.
RUN apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates \
    && rm -rf /var/lib/apt/lists/*
COPY --from=build /src/target/release/whatsapp-exporter /usr/local/bin/whatsapp-exporter
# The state store lives here (state_file: /var/lib/whatsapp-exporter/state.json: the
# path of earlier releases, kept so an upgrade imports their JSON file once).
RUN mkdir -p /var/lib/whatsapp-exporter && chown 65532:65532 /var/lib/whatsapp-exporter
VOLUME /var/lib/whatsapp-exporter
USER 65532:65532
EXPOSE 9917
ENTRYPOINT ["/usr/local/bin/whatsapp-exporter"]
CMD ["--config.file=/etc/whatsapp-exporter/config.yml"]
