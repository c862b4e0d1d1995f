#!/bin/bash
# the look-up loss on the shipped LaME (whose [EMBED] reads the question), against the same fine-tune without it
cd "$(dirname "$0")/../.."
scripts/queues/chain.sh see_30.json see-k16-lookup-ft see-k16-binding-ft
