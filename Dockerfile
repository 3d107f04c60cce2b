# syntax=docker/dockerfile:1
# authd: build the release binary exactly as CI does (scripts/smoke), then run it in a small
# distroless image as a numeric unprivileged user. No protoc is needed: protos are compiled by
# protox at build time. scripts/docker-replay replays this file in CI (no Docker daemon there), so
# keep the build stage to WORKDIR, COPY, RUN and ENV with paths relative to WORKDIR.

FROM rust:1.95-slim-bookworm AS build
WORKDIR /src
# Dependencies first, in a layer of their own: only the manifests, build.rs with the protos it
# compiles, and a stub for every target Cargo.toml names (cargo refuses a manifest whose targets
# are missing), so editing the sources does not rebuild the crates.io dependencies.
COPY Cargo.toml Cargo.lock build.rs ./
COPY migration/Cargo.toml migration/Cargo.toml
COPY verifier/Cargo.toml verifier/build.rs verifier/
# The habits example is a workspace member too, but the image builds only authd: its manifest and
# stub targets (kept in both layers) are all that loading the workspace needs.
COPY examples/habits/Cargo.toml examples/habits/Cargo.toml
# So is the benchmark harness (benches/load, never in the image): its manifest and a stub.
COPY benches/load/Cargo.toml benches/load/Cargo.toml
COPY proto proto
RUN mkdir -p src migration/src verifier/src benches/load/src verifier/benches examples/habits/src \
 && echo 'fn main() {}' > src/main.rs && touch src/lib.rs \
 && echo 'fn main() {}' > migration/src/main.rs && touch migration/src/lib.rs verifier/src/lib.rs \
 && echo 'fn main() {}' > examples/habits/src/main.rs && touch examples/habits/src/lib.rs \
 && echo 'fn main() {}' > benches/load/src/main.rs \
 && for bench in grpc timing memory revocations signing; do echo 'fn main() {}' > "benches/$bench.rs"; done \
 && echo 'fn main() {}' > verifier/benches/check.rs \
 && cargo build --release --locked --bin authd \
 && rm -rf src migration/src verifier/src benches verifier/benches
COPY src src
COPY migration/src migration/src
COPY verifier/src verifier/src
COPY verifier/benches verifier/benches
COPY benches benches
# COPY keeps the files' own mtimes, which can be older than the stub build: touch every crate
# root so cargo rebuilds every crate from the real sources, not from the stubs.
RUN touch src/main.rs src/lib.rs migration/src/lib.rs verifier/src/lib.rs \
 && cargo build --release --locked --bin authd \
 && mkdir -p out/data \
 && cp target/release/authd out/authd

FROM gcr.io/distroless/cc-debian12:nonroot
COPY --from=build /src/out/authd /usr/local/bin/authd
# The default SQLite file's folder, owned by the numeric user (distroless has no shell to mkdir).
COPY --from=build --chown=65532:65532 /src/out/data /var/lib/authd
USER 65532:65532
WORKDIR /var/lib/authd
# No AUTHD_SMTP_URL and no AUTHD_MAIL_TO_LOG: serve refuses to start until one is given (see the
# README's "Deploying" section and docker-compose.yaml).
ENV AUTHD_GRPC_ADDR=0.0.0.0:50051 \
    AUTHD_HTTP_ADDR=0.0.0.0:8080 \
    AUTHD_DATABASE_URL=sqlite:///var/lib/authd/authd.db?mode=rwc \
    AUTHD_LOG_FORMAT=json
VOLUME ["/var/lib/authd"]
EXPOSE 50051 8080
STOPSIGNAL SIGTERM
HEALTHCHECK --interval=10s --timeout=5s --start-period=30s --retries=3 \
  CMD ["/usr/local/bin/authd", "healthcheck"]
ENTRYPOINT ["/usr/local/bin/authd"]
CMD ["serve"]
