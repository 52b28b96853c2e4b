# One slim image for every program: the sync service (python -m hook), the
# one-shot migration command (yoyo), the CMS simulator and the smart library stand-in.
# The two stand-ins are stages that only name their command (docker-compose builds
# them with `target:`), so compose sets no command for them: the seed's CMS or the
# real smart library swapped in under their service (`image:` for `build:`) runs
# its own command, not ours.
# A Python release and a Debian release of our choosing: python:3.11-slim moved
# to whatever was newest on the day of each build.
FROM python:3.11.7-slim-bookworm AS base

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

WORKDIR /app

# Requirements first, so code changes do not reinstall dependencies.
COPY requirements.txt ./
RUN pip install -r requirements.txt

COPY hook ./hook
COPY migrations ./migrations
# migrations/9999-database-code.py loads the database code from db/ on every apply.
COPY db ./db
COPY sql ./sql
COPY cms_simulator ./cms_simulator
COPY smart_library ./smart_library

# The CMS simulator creates its table from the contract's DDL when it is missing.
COPY deploy/initdb/10-smart-library.sql ./deploy/initdb/10-smart-library.sql
RUN useradd --system --uid 10001 --no-create-home hook \
 && mkdir -p /var/lib/fragrance-sync/spool \
 && chown hook /var/lib/fragrance-sync/spool \
 && chmod 700 /var/lib/fragrance-sync/spool
USER hook

# Each program keeps its own default port: the sync 9098, the smart library
# 9099 (the real one's, hard-coded), the CMS simulator 9090.
ENV HOST=0.0.0.0 \
    SPOOL_DIR=/var/lib/fragrance-sync/spool
EXPOSE 9090 9098 9099

FROM base AS cms_simulator
CMD ["python", "-m", "cms_simulator"]

FROM base AS smart_library
CMD ["python", "-m", "smart_library"]

# The last stage, what a plain `docker build .` makes: the sync service.
FROM base AS fragrance_sync
CMD ["python", "-m", "hook"]
