# syntax=docker/dockerfile:1
# authd: build the release binary exactly as CI does (scripts/smoke), then run it in a small
# image as an unprivileged user. No protoc is needed: protos are compiled by protox at build time.

FROM rust:1.95-slim-bookworm AS build
WORKDIR /src
# Dependencies first, so source edits do not refetch the crate registry.
COPY Cargo.toml Cargo.lock ./
COPY migration/Cargo.toml migration/Cargo.toml
RUN mkdir -p src migration/src \
 && echo 'fn main() {}' > src/main.rs && touch src/lib.rs \
 && echo 'fn main() {}' > migration/src/main.rs && touch migration/src/lib.rs \
 && cargo fetch --locked
COPY . .
RUN touch src/main.rs src/lib.rs migration/src/lib.rs \
 && cargo build --release --locked --bin authd

FROM debian:bookworm-slim
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates \
 && rm -rf /var/lib/apt/lists/* \
 && useradd --system --uid 10001 --user-group --home-dir /var/lib/authd --create-home authd
COPY --from=build /src/target/release/authd /usr/local/bin/authd
USER authd:authd
WORKDIR /var/lib/authd
ENV AUTHD_GRPC_ADDR=0.0.0.0:50051 \
    AUTHD_HTTP_ADDR=0.0.0.0:8080 \
    AUTHD_DATABASE_URL=sqlite:///var/lib/authd/authd.db?mode=rwc \
    AUTHD_LOG_FORMAT=json
VOLUME ["/var/lib/authd"]
EXPOSE 50051 8080
STOPSIGNAL SIGTERM
ENTRYPOINT ["/usr/local/bin/authd"]
CMD ["serve"]
