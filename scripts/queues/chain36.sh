#!/bin/bash
# scene words over seeds (discriminative seeds 1-4) and in the other three recipes (seed 0)
cd "$(dirname "$0")/../.."
scripts/queues/chain.sh see_34.json see-discriminative-sw-s1 see-discriminative-sw-s2 see-lame-k16-sw \
  see-discriminative-sw-s3 see-discriminative-sw-s4 see-cot-ownret-sw see-sequential-k16-sw
