# The meshinit image: the static meshinit binary and nothing else.
#
# Built by "make image" (scripts/image.sh) from bin/meshinit, which
# "make build" compiles with CGO_ENABLED=0; no registry is involved.
# Use it as a stage to copy meshinit into your own image (images/example/):
#
#   FROM meshinit:latest AS meshinit
#   FROM your-base
#   COPY --from=meshinit /meshinit /meshinit
#   ENTRYPOINT ["/meshinit", "--"]
#   CMD ["/your/app"]
FROM scratch
ARG VERSION=dev
ARG REVISION=unknown
LABEL org.opencontainers.image.title="meshinit" \
      org.opencontainers.image.description="A correct PID 1 with an in-memory WireGuard mesh node that logs out before the container's last breath" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${REVISION}" \
      org.opencontainers.image.source="https://github.com/meshinit/meshinit" \
      org.opencontainers.image.documentation="https://github.com/meshinit/meshinit/blob/main/README.md"
COPY bin/meshinit /meshinit
ENTRYPOINT ["/meshinit", "--"]
