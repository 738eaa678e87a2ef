# syntax=docker/dockerfile:1

# ---- build: libtorch from PyTorch's wheel, then the release binary -------------
FROM rust:1.95-bookworm AS build
RUN apt-get update \
    && apt-get install -y --no-install-recommends python3 python3-venv \
    && rm -rf /var/lib/apt/lists/*
WORKDIR /src
# The torch install is the slow layer; it only depends on the setup script.
COPY scripts/setup-libtorch.sh scripts/
RUN scripts/setup-libtorch.sh
# The SoundFonts (FluidR3 GM and FluidR3 Mono GM, MIT) from Debian's packages.
COPY scripts/setup-soundfont.sh scripts/
RUN scripts/setup-soundfont.sh \
    && rm -rf /var/lib/apt/lists/*
COPY . .
RUN make build \
    # Keep only the shared libraries the binary loads, at the path its rpath names.
    && mkdir -p /stage \
    && cp -a --parents .venv/lib/python3*/site-packages/torch/lib .venv/lib/python3*/site-packages/nvidia /stage/

# ---- runtime: the binary, libtorch, the bundled models, the page, the SoundFonts ---
FROM debian:bookworm-slim AS runtime
RUN apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates curl libgomp1 \
    && rm -rf /var/lib/apt/lists/* \
    && groupadd --system --gid 10001 fugue \
    && useradd --system --uid 10001 --gid 10001 --create-home --home-dir /var/lib/fugue fugue
COPY --from=build /stage/.venv /src/.venv
COPY --from=build /src/target/release/fugue /usr/local/bin/fugue
COPY models /opt/fugue/models
COPY static /opt/fugue/static
COPY --from=build /src/soundfonts /opt/fugue/soundfonts
ENV FUGUE_ADDR=0.0.0.0:8080 \
    FUGUE_SOUNDFONT=/opt/fugue/soundfonts/FluidR3_GM.sf2 \
    FUGUE_PAGE_SOUNDFONT=/opt/fugue/soundfonts/FluidR3Mono_GM.sf3 \
    FUGUE_DATA_DIR=/var/lib/fugue \
    FUGUE_MODELS_DIR=/opt/fugue/models \
    FUGUE_STATIC_DIR=/opt/fugue/static
USER 10001:10001
WORKDIR /var/lib/fugue
EXPOSE 8080
HEALTHCHECK --interval=15s --timeout=3s --start-period=20s --retries=3 \
    CMD ["curl", "--fail", "--silent", "--show-error", "--max-time", "2", "http://127.0.0.1:8080/health"]
ENTRYPOINT ["fugue"]
CMD ["serve"]
