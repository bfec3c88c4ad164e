# syntax=docker/dockerfile:1
#
# The `karma` server image.
#
#   docker build -t karma .
#   docker run -p 8080:8080 -v karma-data:/data karma
#
# Flags can be appended (`docker run karma --auth-token=secret ...`, replacing
# the default CMD, so repeat --bind/--port/--directory) or given as KARMA_*
# environment variables (`-e KARMA_AUTH_TOKEN=secret`, keeps the CMD).
# `docker stop` sends SIGTERM: the server drains its clients, writes a final
# snapshot and exits 0. `docker kill -s USR1` takes a snapshot while running.

FROM rust:1-bookworm AS builder
WORKDIR /src
COPY . .
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked -p karma-server --bin karma \
    && install -Dm755 target/release/karma /out/karma

FROM debian:bookworm-slim
RUN groupadd --system karma \
    && useradd --system --gid karma --home-dir /data --no-create-home --shell /usr/sbin/nologin karma \
    && mkdir -p /data \
    && chown karma:karma /data
COPY --from=builder /out/karma /usr/local/bin/karma
USER karma
WORKDIR /data
VOLUME /data
EXPOSE 8080
ENTRYPOINT ["karma"]
CMD ["--bind=0.0.0.0", "--port=8080", "--directory=/data"]
