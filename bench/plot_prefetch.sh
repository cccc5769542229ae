#!/bin/bash
# Plots make bench-prefetch's CSV with gnuplot: per case (demand paging in
# each mode, replay of the recorded working set, eager, a stale set's
# replay), the time to the workload's end and the demand faults, one bar
# per guest and source, both on log scales.
# Usage: plot_prefetch.sh CSV PNG
set -eu
csv=$1 png=$2
command -v gnuplot >/dev/null || { echo "plot_prefetch.sh: gnuplot is missing (run 'make deps-bench')" >&2; exit 1; }
platform=$(awk -F'"' 'NR == 2 { print $2 }' "$csv")
dat=$(mktemp -d /tmp/apfvm-plot.XXXXXX)
trap '[ -n "${KEEP:-}" ] || rm -rf "$dat"' EXIT
# One row per case; one column per guest and source, in the CSV's order
# ("?" where a guest has no such case: Linux cannot drift); a count of 0
# has no bar on a log scale and is written "?" too.
# field COL OUT: that figure per case and column.
field() {
	awk -F, -v col="$1" -v zero="$3" 'NR > 1 {
		k = $1 " " $2 " " $3 "ms"
		if (!(k in ci)) { ci[k] = nc++; cname[ci[k]] = k }
		if (!($4 in ri)) { ri[$4] = nr++; rname[ri[$4]] = $4 " " $5 }
		v[ri[$4], ci[k]] = ($col == 0 && zero == "missing") ? "?" : $col
	}
	END {
		printf "case"
		for (c = 0; c < nc; c++) printf " \"%s\"", cname[c]
		printf "\n"
		for (r = 0; r < nr; r++) {
			printf "\"%s\"", rname[r]
			for (c = 0; c < nc; c++) printf " %s", ((r, c) in v) ? v[r, c] : "?"
			printf "\n"
		}
	}' "$csv" >"$2"
}
field 6 "$dat/end" keep
field 10 "$dat/demand" missing
ncols=$(awk -F, 'NR > 1 { k[$1 " " $2 " " $3] = 1 } END { print length(k) }' "$csv")
gnuplot <<GP
set terminal pngcairo size 1500,660 font "sans,10"
set output "$png"
set multiplot layout 1,2 title "apfvm: working-set replay against demand paging, memory over a veth link with netem delay\n{/*0.8 $platform}"
set datafile missing "?"
set style data histograms
set style histogram clustered gap 1
set style fill solid 0.85 border -1
set boxwidth 0.9
set grid ytics
set logscale y
set key below maxrows 2 font ",9"
set xtics rotate by 20 right font ",9"
set ylabel "time to the workload's end (s, log scale)"
set title "time from apfvm's start to the workload's end"
plot for [i=2:$((ncols + 1))] "$dat/end" using i:xtic(1) title columnheader(i)
set ylabel "demand faults (log scale; no bar: none)"
set yrange [0.7:*]
set title "demand faults (the guest waited on the page)"
plot for [i=2:$((ncols + 1))] "$dat/demand" using i:xtic(1) title columnheader(i)
GP
echo "plot: $png"
