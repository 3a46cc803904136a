#!/bin/sh
# Gate for repo-health: wake the agent only when there are commits from the last day.
commits=$(git log --since=yesterday --oneline 2>/dev/null | head -n 50)
if [ -z "$commits" ]; then
  echo '{"wakeAgent": false}'
  exit 0
fi
echo "Commits since yesterday:"
echo "$commits"
