#!/bin/sh
# Headless Chromium for the report test (tests/test_html_report.py): Debian's package, installed
# as root where missing. Called by `make test`; the test calls it too when run on its own.
set -e
if command -v chromium >/dev/null 2>&1 || [ -x /usr/bin/chromium ]; then
    exit 0
fi
if [ "$(id -u)" != "0" ]; then
    echo "chromium is missing: install Debian's package (apt-get install chromium) as root" >&2
    exit 1
fi
export DEBIAN_FRONTEND=noninteractive
apt-get install -y -q chromium >/dev/null 2>&1 || { apt-get update -q >/dev/null && apt-get install -y -q chromium >/dev/null; }
