#!/bin/sh
# make bench: start a real daemon on the example plugins and print figures.
set -eu
cd "$(dirname "$0")/.."
exec /usr/bin/python3 bench/bench.py "$@"
