#!/usr/bin/env bash
# Make sure the browser tests (tests/browser/) have what they drive: Debian's chromium at
# /usr/bin/chromium (Playwright for Python launches it; no `playwright install` download) and
# the Noto CJK fonts, so Korean renders in screenshots. Installs what is missing with apt-get
# (as root, as in CI; sudo otherwise). Idempotent and quick when both are there.
set -euo pipefail

log() { echo "[browser] $*"; }

as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }

CJK_FONT=/usr/share/fonts/opentype/noto/NotoSansCJK-Regular.ttc  # from fonts-noto-cjk

if [ -x /usr/bin/chromium ] && [ -f "$CJK_FONT" ]; then
  log "chromium and Noto CJK fonts are installed"
  exit 0
fi

log "installing chromium and fonts-noto-cjk with apt-get (for the browser tests)"
as_root apt-get update -qq
as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium fonts-noto-cjk >/dev/null
[ -x /usr/bin/chromium ] && [ -f "$CJK_FONT" ] || { log "chromium or the Noto CJK fonts are still missing"; exit 1; }
