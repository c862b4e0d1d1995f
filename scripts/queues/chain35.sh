#!/bin/bash
# scene words (visual tokens carry their scene head's words), without and with the word look-up loss
cd "$(dirname "$0")/../.."
scripts/queues/chain.sh see_33.json see-discriminative-sw see-discriminative-sw-wl
