#!/usr/bin/env bash
# Install the built EDVR custom operator package into CANN's opp and give it load priority.
# Usage: kernels/tbe/scripts/install_opp.sh BUILD_DIR   (needs ASCEND_OPP_PATH, from set_env.sh)
set -euo pipefail
build_dir=${1:?usage: install_opp.sh BUILD_DIR}
vendor=${EDVR_OPP_VENDOR:-edvr}
: "${ASCEND_OPP_PATH:?source the CANN toolkit's set_env.sh first}"
src="$build_dir/packages/vendors/$vendor"
[ -d "$src" ] || { echo "no package at $src: build kernels/tbe with cmake first" >&2; exit 1; }
mkdir -p "$ASCEND_OPP_PATH/vendors/$vendor"
cp -r "$src/." "$ASCEND_OPP_PATH/vendors/$vendor/"
config="$ASCEND_OPP_PATH/vendors/config.ini"
if [ -f "$config" ] && grep -q '^load_priority=' "$config"; then
  grep -q "^load_priority=.*\b$vendor\b" "$config" || sed -i "s/^load_priority=/load_priority=$vendor,/" "$config"
else
  echo "load_priority=$vendor" > "$config"
fi
echo "installed $vendor into $ASCEND_OPP_PATH/vendors ($(cat "$config"))"
