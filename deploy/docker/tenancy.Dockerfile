# tenancy: echopilot.tenancy.v1.TenancyService (gRPC :9101, metrics :9201).
# Build from the repository root (the context needs the sibling modules):
#   docker build -f deploy/docker/tenancy.Dockerfile -t echopilot/tenancy:<version> .
#
# Both bases are pinned by digest so a rebuild of an old commit gives the same
# image; bump them deliberately (crane digest <image:tag>).
FROM golang:1.26.8-bookworm@sha256:a688600ca24f8a4d3ca77f95b0dd40704a9fc787c826660eb7ba0b641b8b175d AS build
WORKDIR /src
# The modules tenancy's go.mod reaches through replace directives (GOWORK=off
# needs each one present), and the build script CI runs too.
COPY gen/ gen/
COPY platform/ platform/
COPY services/audit/ services/audit/
COPY services/queue/ services/queue/
COPY services/tenancy/ services/tenancy/
COPY deploy/build.sh deploy/build.sh
RUN --mount=type=cache,target=/go/pkg/mod \
    --mount=type=cache,target=/root/.cache/go-build \
    deploy/build.sh tenancy /out

# Static binary on distroless: no shell, no package manager, CA roots only.
FROM gcr.io/distroless/static-debian12:nonroot@sha256:afa5c872c891853ca7fcf1f12c3edb23f7eeef36189728842dd51042ff57f7ab
COPY --from=build /out/tenancy /tenancy
USER 65532:65532
EXPOSE 9101 9201
ENTRYPOINT ["/tenancy"]
