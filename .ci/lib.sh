# Shared by .ci/start and .ci/test: installs what is missing, idempotently and without
# prompts, so both work on a fresh Debian machine with rustup, Node.js and npm.
# Sourced, not run.

set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
export PATH="$HOME/.cargo/bin:$PATH"
CARGO_LEPTOS_VERSION="0.3.10"

say() { printf '\033[1m==> %s\033[0m\n' "$*" >&2; }

# Root runs apt-get directly; anyone else goes through sudo.
as_root() { if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi; }

APT_UPDATED=0
ensure_apt() {
  local missing=()
  for package in "$@"; do
    dpkg -s "$package" >/dev/null 2>&1 || missing+=("$package")
  done
  [ ${#missing[@]} -eq 0 ] && return 0
  say "Installing ${missing[*]} (Debian packages)"
  if [ "$APT_UPDATED" -eq 0 ]; then as_root apt-get update -qq; APT_UPDATED=1; fi
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
}

ensure_wasm_target() {
  rustup target list --installed | grep -qx wasm32-unknown-unknown && return 0
  say "Adding the wasm32-unknown-unknown target"
  rustup target add wasm32-unknown-unknown
}

ensure_cargo_leptos() {
  if cargo leptos --version 2>/dev/null | grep -q "$CARGO_LEPTOS_VERSION"; then return 0; fi
  say "Installing cargo-leptos $CARGO_LEPTOS_VERSION (about 11 minutes, once)"
  # 0.3.11 needs a newer rustc; no_downloads: it uses the tools on PATH, never fetches any.
  cargo install cargo-leptos --version "$CARGO_LEPTOS_VERSION" --locked --features no_downloads
}

ensure_wasm_bindgen() {
  local wanted
  wanted="$(awk '/^name = "wasm-bindgen"$/ { getline; gsub(/version = |"/, ""); print; exit }' "$ROOT/Cargo.lock")"
  if wasm-bindgen --version 2>/dev/null | grep -qx "wasm-bindgen $wanted"; then return 0; fi
  say "Installing wasm-bindgen-cli $wanted (must match Cargo.lock)"
  # --locked fails on a dependency version the registry no longer has; this picks ones that build here.
  CARGO_RESOLVER_INCOMPATIBLE_RUST_VERSIONS=fallback cargo install wasm-bindgen-cli --version "$wanted" --force
}

ensure_node() {
  command -v node >/dev/null && command -v npm >/dev/null && return 0
  ensure_apt nodejs npm
}

ensure_wasm_opt() {
  command -v wasm-opt >/dev/null && return 0
  ensure_node
  say "Installing wasm-opt (binaryen, from npm)"
  npm install -g --no-fund --no-audit binaryen >/dev/null
}

# Everything needed to build the front end and the server in release mode.
ensure_build_tools() {
  ensure_wasm_target
  ensure_wasm_bindgen
  ensure_wasm_opt
  ensure_cargo_leptos
}

build_release() {
  say "Building Landfall (release: server and wasm front end)"
  (cd "$ROOT" && cargo leptos build --release)
}
