# deploy/ha/pg-auto-failover.Dockerfile — PostgreSQL 15 with Debian's
# pg_auto_failover, for docker-compose.ha.yml: the same packages the local
# runner uses (deploy/local/packages.sh --ha), so containers and tests run
# one version of the monitor and keeper.
FROM debian:bookworm-slim
RUN apt-get update \
    && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
        postgresql-15 pg-auto-failover-cli postgresql-15-auto-failover \
    && rm -rf /var/lib/apt/lists/*
ENV PATH=/usr/lib/postgresql/15/bin:$PATH PGDATA=/var/lib/postgresql/data
USER postgres
WORKDIR /var/lib/postgresql
