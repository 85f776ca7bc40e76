#!/usr/bin/env bash
# Builds one deployable's static binary (and the tools its image ships): the one build both its Dockerfile
# (deploy/docker/<name>.Dockerfile) and CI run, so CI proves the images build.
#
#   deploy/build.sh <deployable> <outdir>     e.g. deploy/build.sh queue /tmp/out
#
# GOWORK=off: each module builds alone, through its own go.mod and replace
# directives, as in the image, where go.work and the other modules are absent.
# CGO_ENABLED=0: a static binary for the distroless static base (no libc).
# -trimpath, -buildvcs=false: the same bytes in a clone and in the Docker
# context (which has no .git).
set -euo pipefail

usage="usage: $0 <deployable> <outdir>"
name=${1:?$usage}
out=${2:?$usage}
root=$(cd "$(dirname "$0")/.." && pwd)

case $name in
gateway) module=gateway ;;
*) module=services/$name ;;
esac
if [ ! -d "$root/$module/cmd/$name" ]; then
	echo "$0: no $module/cmd/$name: not a deployable" >&2
	exit 2
fi

mkdir -p "$out"
out=$(cd "$out" && pwd)
cd "$root/$module"
# Tools a deployable's image ships besides its binary: the audit image
# carries audit-verify, so the audit-monitor CronJob runs the same release;
# the finops image its import and reconciliation commands.
tools=()
case $name in
audit) tools=(audit-verify) ;;
finops) tools=(finops-import finops-reconcile) ;;
esac
for bin in "$name" ${tools[@]+"${tools[@]}"}; do
	GOWORK=off CGO_ENABLED=0 go build -trimpath -buildvcs=false -ldflags='-s -w' -o "$out/$bin" "./cmd/$bin"
	echo "built $out/$bin"
done
