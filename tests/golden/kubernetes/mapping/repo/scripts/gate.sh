#!/bin/sh
# Wake the agent only when there is something to say.
echo "alerts: none"
