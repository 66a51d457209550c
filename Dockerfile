# The gateway in one image: Caddy (the only listener facing the network), proxy and control,
# run by supervisord. Build: `docker compose up --build`, or `docker build -t aoai-gateway .`
# See docs/deploy-aci.md and docs/operations.md.

FROM rust:1-bookworm AS build
# nasm gives mozjpeg (request image compression) its SIMD code.
RUN apt-get update \
    && apt-get install -y --no-install-recommends nasm \
    && rm -rf /var/lib/apt/lists/*
WORKDIR /src

# Dependencies first, against empty crates, so that a change to the sources reuses this layer.
COPY Cargo.toml Cargo.lock ./
COPY proxy/Cargo.toml proxy/
COPY control/Cargo.toml control/
COPY fake-foundry/Cargo.toml fake-foundry/
COPY stack-tests/Cargo.toml stack-tests/
COPY test-support/Cargo.toml test-support/
COPY bench/images/Cargo.toml bench/images/
COPY bench/gateway/Cargo.toml bench/gateway/
COPY bench/soak/Cargo.toml bench/soak/
COPY sdk-tests/Cargo.toml sdk-tests/
RUN for crate in proxy control fake-foundry stack-tests test-support bench/images bench/gateway \
        bench/soak sdk-tests; do \
        mkdir -p "$crate/src" && touch "$crate/src/lib.rs" && echo 'fn main() {}' > "$crate/src/main.rs"; \
    done \
    && cargo build --release --locked -p proxy -p control

# Only what the two binaries are built from, so that other changes reuse the layer below. The
# example config is built into both: they create config.json from it on first start. The
# operator's own config never enters the build context (.dockerignore).
COPY proxy proxy
COPY control control
COPY caddy caddy
COPY data/config.example.json data/
# The copied sources are older than the empty crates built above: make cargo rebuild them.
RUN find proxy control -name '*.rs' -exec touch {} + \
    && cargo build --release --locked -p proxy -p control \
    && cp target/release/proxy target/release/control /usr/local/bin/

# fake-foundry, the fake Azure upstream of docker-compose.yml's `fake` profile: an image of its
# own (`--target fake-foundry`), never part of the gateway's.
FROM build AS fake-foundry-build
COPY fake-foundry fake-foundry
RUN find fake-foundry -name '*.rs' -exec touch {} + \
    && cargo build --release --locked -p fake-foundry \
    && cp target/release/fake-foundry /usr/local/bin/

FROM debian:bookworm-slim AS fake-foundry
COPY --from=fake-foundry-build /usr/local/bin/fake-foundry /usr/local/bin/
USER 10001
EXPOSE 8081
ENTRYPOINT ["fake-foundry"]
CMD ["--host", "0.0.0.0", "--port", "8081"]

# A current Caddy (Debian's 2.6 cuts live SSE streams on every reload), allowed to bind 443
# without root. Set apart, so that the runtime image holds the binary once and no libcap tools.
FROM debian:bookworm-slim AS caddy-bin
RUN apt-get update \
    && apt-get install -y --no-install-recommends libcap2-bin \
    && rm -rf /var/lib/apt/lists/*
COPY --from=caddy:2 /usr/bin/caddy /usr/bin/caddy
RUN setcap cap_net_bind_service=+ep /usr/bin/caddy

FROM debian:bookworm-slim
RUN apt-get update \
    && apt-get install -y --no-install-recommends supervisor ca-certificates \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --system --uid 10001 --user-group --home-dir /app --no-create-home \
        --shell /usr/sbin/nologin gateway \
    && mkdir -p /app/data \
    && chown gateway:gateway /app/data
COPY --from=caddy-bin /usr/bin/caddy /usr/bin/caddy
COPY --from=build /usr/local/bin/proxy /usr/local/bin/control /usr/local/bin/
COPY supervisord.conf /app/
COPY container/ /app/container/
COPY caddy/bootstrap.Caddyfile /app/caddy/

# entrypoint.sh has the defaults of every path and port; these are the ones worth knowing, and
# the ones `supervisorctl` needs to read /app/supervisord.conf in `docker exec`.
ENV GATEWAY_HOME=/app \
    GATEWAY_USER=gateway \
    DATA_DIR=/app/data \
    CADDY_HTTP_PORT=3000 \
    SUPERVISOR_RUN_DIR=/tmp \
    PROXY_STOP_WAIT_SECS=13
WORKDIR /app
EXPOSE 3000 443
VOLUME /app/data
HEALTHCHECK --interval=30s --timeout=5s --start-period=20s --retries=3 \
    CMD ["/app/container/healthcheck.sh"]
ENTRYPOINT ["/app/container/entrypoint.sh"]
