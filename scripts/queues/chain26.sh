#!/bin/bash
# 2026-12-04, after chain25 (stopped while it waited; chain27 runs it): seeds 1 and 2 of the K = 16 sequential-latent baseline (three seeds
# against LaME K = 16's seeds 0-2, paired on the test queries).
cd "$(dirname "$0")"
while [ ! -f ../../logs/chain25.done ]; do sleep 30; done
./chain.sh see_24.json see-sequential-k16-s1 see-sequential-k16-s2 &&
touch ../../logs/chain26.done
