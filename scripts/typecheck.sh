#!/usr/bin/env bash
# Four programs, four sets of rules: shared/ sees neither the DOM nor Node, client/ and web/
# see the DOM, the rest sees Node. The large Node program is checked beside the three small
# ones (two cores, two compilers); the exit status fails if either side does.
set -euo pipefail
cd "$(dirname "$0")/.."
tsc=node_modules/.bin/tsc
$tsc -p . &
node_side=$!
status=0
{ $tsc -p shared && $tsc -p client && $tsc -p web; } || status=1
wait "$node_side" || status=1
exit "$status"
