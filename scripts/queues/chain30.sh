#!/bin/bash
# the look-up loss on the shipped discriminative model, colour_of / shape_of only (against see_23)
cd "$(dirname "$0")/../.."
scripts/queues/chain.sh see_28.json see-disc-lookup-ft
