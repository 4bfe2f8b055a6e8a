#!/bin/bash
# A/B: `gridcase rates` offline (B: the store closed) vs through a running
# server (A), alternating rounds; prints each run's wall ms and the medians.
set -euo pipefail
X=${X:?binary}; D=${D:?demo data dir}; ROUNDS=${ROUNDS:-4}; N=${N:-5}
ms() { local s=$(date +%s%N); "$@" > /dev/null; echo $(( ($(date +%s%N) - s) / 1000000 )); }
off=(); on=()
for r in $(seq $ROUNDS); do
  for i in $(seq $N); do off+=($(ms $X --data $D rates)); done
  $X --data $D serve --listen 127.0.0.1:0 --tick-seconds 0 --checkpoint-every 0 > $D.serve.out 2>/dev/null &
  pid=$!
  until grep -q listening $D.serve.out 2>/dev/null; do sleep 0.1; done
  for i in $(seq $N); do on+=($(ms $X --data $D rates)); done
  kill -TERM $pid; wait $pid || true
done
med() { printf '%s\n' "$@" | sort -n | awk '{a[NR]=$1} END {print (NR%2 ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2)}'; }
echo "offline: ${off[*]}"; echo "live:    ${on[*]}"
echo "median offline $(med "${off[@]}") ms, live $(med "${on[@]}") ms"
