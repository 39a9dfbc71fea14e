# berth: one static-ish binary with the UI embedded, running as a non-root user.
#   docker build -t berth .
# The UI is built first: rust-embed reads web/dist at compile time.

FROM node:20-bookworm-slim AS web
WORKDIR /src/web
COPY web/package.json web/package-lock.json ./
RUN npm ci --no-audit --no-fund
COPY web/ ./
RUN npm run build

FROM rust:1.95-bookworm AS build
WORKDIR /src
COPY . .
COPY --from=web /src/web/dist web/dist
RUN cargo build --release --locked -p berth \
 && install -D -m 0755 target/release/berth /out/berth

FROM debian:bookworm-slim
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates tini \
 && rm -rf /var/lib/apt/lists/* \
 && useradd --system --uid 10001 --home-dir /data --shell /usr/sbin/nologin berth \
 && install -d -m 0700 -o berth -g berth /data
COPY --from=build /out/berth /usr/local/bin/berth
USER 10001:10001
ENV BERTH_LISTEN=0.0.0.0:8080 \
    BERTH_DATA_DIR=/data \
    BERTH_SEED_FILE=/seed.yaml
VOLUME ["/data"]
EXPOSE 8080
HEALTHCHECK --interval=15s --timeout=5s --start-period=10s --retries=3 CMD ["berth", "healthcheck"]
ENTRYPOINT ["tini", "--", "berth"]
CMD ["serve"]
