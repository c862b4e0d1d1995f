#!/bin/bash
# 2026-12-04, after chain25 (replaces chain26, stopped before it started): the binding fine-tune of
# see_23 again with an object curriculum (at most 2 objects a scene for 300 steps, then 3 for 150,
# then any; validation only), then seeds 1 and 2 of the K = 16 sequential-latent baseline.
cd "$(dirname "$0")"
while [ ! -f ../../logs/chain25.done ]; do sleep 30; done
(cd ../.. && .venv/bin/python scripts/science_queue.py scripts/queues/see_25.json --runs runs/see \
  --only see-disc-binding-ft-cur > logs/q_see-disc-binding-ft-cur.log 2>&1)
./chain.sh see_24.json see-sequential-k16-s1 see-sequential-k16-s2 &&
touch ../../logs/chain27.done
