# tent's installer image: the static `tent` CLI (install/uninstall/doctor/audit), the static
# containerd-shim-tent-v1, tent's two profiles and a static kubectl (the node label). The
# chart (charts/tent) runs it as a privileged DaemonSet with hostPID and the host's / at /host.
#
#   docker build -t tent-installer:0.1.0 .                     (from the repository's root)
#   docker build --build-arg KUBECTL_IMAGE=registry.k8s.io/kubectl:v1.33.0 ...
#
# cli/tests/image.rs checks that every file this copies from the build context exists.
ARG RUST_IMAGE=docker.io/library/rust:1-bookworm
ARG KUBECTL_IMAGE=registry.k8s.io/kubectl:v1.33.0

FROM ${KUBECTL_IMAGE} AS kubectl

FROM ${RUST_IMAGE} AS build
RUN apt-get update && apt-get install -y --no-install-recommends protobuf-compiler \
    && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY Cargo.toml Cargo.lock ./
COPY runtime runtime
COPY shim shim
COPY integration integration
COPY cli cli
COPY audit audit
COPY cri-client cri-client
COPY hack/build-shim.sh hack/build-shim.sh
# The shim as it ships (hack/build-shim.sh: release, static-pie), and the CLI the same way.
RUN bash hack/build-shim.sh \
    && RUSTFLAGS="-C target-feature=+crt-static" cargo build --release -p tent-cli \
       --target x86_64-unknown-linux-gnu \
    && mkdir -p /out/bin/profiles \
    && cp target/x86_64-unknown-linux-gnu/release/containerd-shim-tent-v1 \
          target/x86_64-unknown-linux-gnu/release/tent /out/bin/

FROM scratch
COPY --from=build /out/bin/ /bin/
# `tent install` takes the shim and profiles/ from beside its own binary by default.
COPY config/tent.toml config/tent-compat.toml /bin/profiles/
COPY --from=kubectl /bin/kubectl /bin/kubectl
# Commands run in the host's namespaces (containerd, systemctl) are found on the host's PATH.
ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
ENTRYPOINT ["/bin/tent"]
CMD ["install", "--help"]
