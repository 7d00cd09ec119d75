# keygate: OAuth 2.0 client-credentials token server.
#
#   docker build -t keygate .
#   docker run -p 8080:8080 -e KEYGATE_ISSUER=http://localhost:8080 \
#       -v keygate-data:/data keygate
#
# KEYGATE_ISSUER is the public URL clients and resource servers use (the
# `iss` of every token; https://... in production). The container listens on
# 0.0.0.0:8080, from which keygate cannot guess that URL: without
# KEYGATE_ISSUER it stops at start-up and says so.
#
# Defaults: SQLite at /data/keygate.db (a volume; the generated
# KEYGATE_SECRET_KEY file lands beside it), listening on 0.0.0.0:8080.
# For PostgreSQL set KEYGATE_DATABASE_URL=postgres://... and KEYGATE_SECRET_KEY.

FROM rust:1-bookworm AS builder
RUN apt-get update \
    && apt-get install -y --no-install-recommends libpq-dev \
    && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY . .
RUN cargo build --release --locked --bin keygate \
    && install -m 0755 target/release/keygate /usr/local/bin/keygate

FROM debian:bookworm-slim
RUN apt-get update \
    && apt-get install -y --no-install-recommends libpq5 ca-certificates \
    && rm -rf /var/lib/apt/lists/* \
    && groupadd --system --gid 10001 keygate \
    && useradd --system --uid 10001 --gid keygate --home-dir /data --shell /usr/sbin/nologin keygate \
    && mkdir -p /data \
    && chown keygate:keygate /data
COPY --from=builder /usr/local/bin/keygate /usr/local/bin/keygate

ENV KEYGATE_LISTEN=0.0.0.0:8080 \
    KEYGATE_DATABASE_URL=sqlite:///data/keygate.db \
    KEYGATE_MAIL_DIR=/data/mail
VOLUME ["/data"]
WORKDIR /data
USER keygate:keygate
EXPOSE 8080
ENTRYPOINT ["keygate"]
CMD ["serve"]
