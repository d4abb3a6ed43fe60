#!/usr/bin/env bash
# Compare api/tests/fixtures/conduit-error-reasons.tsv with the error reasons a Conduit
# checkout registers (every conduiterr.Register call outside tests): prints the reasons
# missing from the fixture, the ones Conduit no longer has, and code or file changes.
# Exit status 1 if anything differs. Updating the fixture (and its commit line, and the
# situations) stays a manual step.
#
#   scripts/conduit-error-reasons.sh [CONDUIT_GIT_DIR] [COMMIT]
#
# CONDUIT_GIT_DIR defaults to /work/.mirror/ConduitIO+conduit/repo (a bare clone works),
# COMMIT to HEAD.
set -euo pipefail

git_dir=${1:-/work/.mirror/ConduitIO+conduit/repo}
commit=${2:-HEAD}
root=$(cd "$(dirname "$0")/.." && pwd)
fixture=$root/api/tests/fixtures/conduit-error-reasons.tsv

upper() { sed -E 's/([a-z0-9])([A-Z])/\1_\2/g' | tr '[:lower:]' '[:upper:]'; }

# reason <TAB> GRPC_CODE <TAB> file, from Conduit.
conduit=$(mktemp)
ours=$(mktemp)
trap 'rm -f "$conduit" "$ours"' EXIT
git --git-dir="$git_dir" grep -E 'Register\("[^"]+", *codes\.[A-Za-z]+\)' "$commit" \
    -- '*.go' ':!*_test.go' |
    sed -E "s/^$commit://" |
    grep -v -E '^[^:]+:[[:space:]]*//' |
    sed -E 's/^([^:]+):.*Register\("([^"]+)", *codes\.([A-Za-z]+)\).*/\2\t\3\t\1/' |
    while IFS=$'\t' read -r reason code file; do
        printf '%s\t%s\t%s\n' "$reason" "$(printf '%s' "$code" | upper)" "$file"
    done | sort >"$conduit"

grep -v '^#' "$fixture" | tail -n +2 | awk -F'\t' '{print $1 "\t" $2 "\t" $4}' | sort >"$ours"

echo "Conduit $(git --git-dir="$git_dir" rev-parse "$commit")"
echo "fixture $(grep -m1 -o 'commit [0-9a-f]*' "$fixture")"
if diff -u --label fixture --label conduit "$ours" "$conduit"; then
    echo "the fixture lists every reason Conduit registers, with the same codes and files"
else
    exit 1
fi
