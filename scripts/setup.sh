#!/usr/bin/env bash
# Installs what Tributary needs on a fresh Debian machine, and nothing twice:
# Debian packages that are missing, then npm dependencies if they are stale.
set -euo pipefail
cd "$(dirname "$0")/.."

need=()
# The built-in tasks' data: Fashion-MNIST images and the fortune files (the tables come with npm's vega-datasets).
[ -e /usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz ] || need+=(dataset-fashion-mnist)
[ -e /usr/share/games/fortunes/computers ] || need+=(fortunes)
# Browser tests drive Debian's Chromium (never a downloaded one); its SwiftShader Vulkan driver gives WebGPU without a GPU.
for pkg in chromium libvulkan1; do dpkg -s "$pkg" >/dev/null 2>&1 || need+=("$pkg"); done
# Cluster mode and its tests: Redis for coordination, PostgreSQL for durable state, nginx in front (tests start their own instances).
for pkg in redis-server postgresql nginx; do dpkg -s "$pkg" >/dev/null 2>&1 || need+=("$pkg"); done
if [ ${#need[@]} -gt 0 ]; then
  echo "setup: installing Debian packages: ${need[*]}"
  sudo=""; [ "$(id -u)" -eq 0 ] || sudo="sudo"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${need[@]}" >/dev/null
fi

if [ ! -d node_modules ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  echo "setup: installing npm dependencies"
  npm ci --no-fund --no-audit
fi
