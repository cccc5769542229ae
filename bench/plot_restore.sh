#!/bin/bash
# Plots make bench-restore's two CSVs with gnuplot: the time from
# `apfvm restore` to the guest's first instruction by memory size (lazy
# against eager), and per mode the time until the restored workload
# completes and the compute rate during the restore (lazy against the
# same workload with its memory resident).
# Usage: plot_restore.sh FIRST_CSV MODES_CSV PNG
set -eu
first=$1 modes=$2 png=$3
command -v gnuplot >/dev/null || { echo "plot_restore.sh: gnuplot is missing (run 'make deps')" >&2; exit 1; }
platform=$(awk -F'"' 'NR == 2 { print $2 }' "$first")
dat=$(mktemp /tmp/apfvm-plot.XXXXXX)
trap 'rm -f "$dat"' EXIT
# One row per mode: index, mode, then end and rate for lazy 1 ms, lazy 10 ms, resident.
awk -F, 'NR > 1 {
	if (!($1 in idx)) { idx[$1] = n++; name[idx[$1]] = $1 }
	k = $2 ($2 == "lazy" ? $3 : "")
	end[idx[$1], k] = $4; rate[idx[$1], k] = $5
}
END {
	for (i = 0; i < n; i++)
		print i, name[i], end[i, "lazy1"], end[i, "lazy10"], end[i, "resident"], \
			rate[i, "lazy1"], rate[i, "lazy10"], rate[i, "resident"]
}' "$modes" >"$dat"
gnuplot <<GP
set terminal pngcairo size 1500,480 font "sans,11"
set output "$png"
set multiplot layout 1,3 title "apfvm: lazy restore from a snapshot (reference guest)\nplatform: ${platform:-not recorded}"
set datafile separator ","
set grid ytics
set key top left
set logscale y
set xlabel "resident memory (MiB)"
set ylabel "ms (log scale)"
set title "restore to the guest's first instruction"
plot "$first" using 1:2:xtic(1) every ::1 with linespoints lw 2 pt 7 title "lazy", \
     "" using 1:3:xtic(1) every ::1 with linespoints lw 2 pt 5 title "eager (--populate)"
unset logscale y
set datafile separator whitespace
set style data histograms
set style histogram clustered gap 1
set style fill solid 0.8 border -1
set boxwidth 0.9
set xlabel "mode"
set yrange [0:*]
set key top right
max3(a, b, c) = a > b ? (a > c ? a : c) : (b > c ? b : c)
stats "$dat" using (max3(\$3, \$4, \$5)) nooutput name "E"
set yrange [0:E_max * 1.25]
set ylabel "s"
set title "restore until the workload completes"
plot "$dat" using 3:xtic(2) title "lazy, 1 ms per page", "" using 4 title "lazy, 10 ms per page", \
     "" using 5 title "resident"
set ylabel "work units / s"
set title "compute rate during the restore"
set yrange [*:*]
stats "$dat" using (max3(\$6, \$7, \$8)) nooutput name "R"
set yrange [0:R_max * 1.35]
plot "$dat" using 6:xtic(2) title "lazy, 1 ms per page", "" using 7 title "lazy, 10 ms per page", \
     "" using 8 title "resident"
unset multiplot
GP
echo "plot: $png"
