#!/usr/bin/env bash
# Runs one fuzz target for a while with every line of libFuzzer's output time-stamped, then says
# when coverage last grew: the figures fuzz/README.md reports, and how a plateau is judged.
#
#   fuzz/run-timed.sh TARGET SECONDS [cargo fuzz run options...]     e.g. -s none
#   fuzz/run-timed.sh --summary LOG                                  summarise a log again
#
# The log goes to fuzz/logs/TARGET-YYYYmmdd-HHMM.log. Runs at nice 19 with
# -rss_limit_mb=2048 -timeout=60 (a longer timeout than libFuzzer's default, so that a machine
# busy with other work does not produce false timeouts).
set -euo pipefail
cd "$(dirname "$0")"

summary() {
  awk '{t = $1}
    /INITED/ && !s {s = t; for (i = 1; i <= NF; i++) if ($i == "cov:") c0 = $(i + 1)}
    /cov:/ {
      for (i = 1; i <= NF; i++) {
        if ($i == "cov:") c = $(i + 1); if ($i == "ft:") f = $(i + 1); if ($i == "exec/s:") e = $(i + 1)
      }
      if (c + 0 > lc + 0) {lc = c; tc = t}
      if (f + 0 > lf + 0) {lf = f; tf = t}
    }
    /SUMMARY: libFuzzer|deadly signal|panicked/ {crash = 1}
    END {
      printf "ran %d s from the loaded corpus (cov %s then); cov %s, last grew at %d s; ft %s, last grew at %d s; %s exec/s%s\n",
        t - s, c0, lc, tc - s, lf, tf - s, e, crash ? "; STOPPED ON A CRASH (see the log)" : ""
    }' "$1"
}

if [[ ${1:-} == --summary ]]; then
  summary "${2:?usage: run-timed.sh --summary LOG}"
  exit 0
fi
target=${1:?usage: run-timed.sh TARGET SECONDS [cargo fuzz run options...]}
secs=${2:?usage: run-timed.sh TARGET SECONDS [cargo fuzz run options...]}
shift 2
mkdir -p logs "artifacts/$target"
log="logs/$target-$(date +%Y%m%d-%H%M).log"
RUSTC_BOOTSTRAP=1 nice -n 19 cargo fuzz run "$@" "$target" -- \
  -max_total_time="$secs" -rss_limit_mb=2048 -timeout=60 -print_final_stats=1 2>&1 |
  while IFS= read -r line; do printf '%(%s)T %s\n' -1 "$line"; done >"$log" || true
echo "$log"
summary "$log"
