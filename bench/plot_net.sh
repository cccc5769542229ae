#!/bin/bash
# Plots make bench-net's two CSVs with gnuplot: each source's pages per
# second by requests in flight for each link delay, and per async mode the
# compute task's rate (as a fraction of its rate alone) while a scan is
# served over the link with 1 ms and 10 ms of delay.
# Usage: plot_net.sh FETCH_CSV MODES_CSV PNG
set -eu
fetch=$1 modes=$2 png=$3
command -v gnuplot >/dev/null || { echo "plot_net.sh: gnuplot is missing (run 'make deps')" >&2; exit 1; }
p1=$(awk -F'"' 'NR == 2 { print $2 }' "$fetch")
p2=$(awk -F'"' 'NR == 2 { print $2 }' "$modes")
dat=$(mktemp -d /tmp/apfvm-plot.XXXXXX)
trap 'rm -rf "$dat"' EXIT
# Fetch: one row per in-flight count; columns: tcp at 0, 1, 10 ms, then s3.
awk -F, 'NR > 1 { v[$3, $1, $2] = $4; k[$3] = 1 }
END { for (i in k) print i, v[i, "tcp", 0], v[i, "tcp", 1], v[i, "tcp", 10], \
	v[i, "s3", 0], v[i, "s3", 1], v[i, "s3", 10] }' "$fetch" | sort -n >"$dat/fetch"
# Modes: one row per mode; columns: tcp at 1 ms, 10 ms, s3 at 1 ms, 10 ms.
awk -F, 'NR > 1 { if (!($3 in idx)) { idx[$3] = n++; name[idx[$3]] = $3 } f[idx[$3], $1, $2] = $5 }
END { for (i = 0; i < n; i++) print i, name[i], f[i, "tcp", 1], f[i, "tcp", 10], f[i, "s3", 1], f[i, "s3", 10] }' \
	"$modes" >"$dat/modes"
gnuplot <<GP
set terminal pngcairo size 1400,560 font "sans,11"
set output "$png"
set multiplot layout 1,2 title "apfvm: memory over a veth link with netem delay: apfvm serve (tcp:) and s3rver (s3://)"
set grid ytics
set key top left
set logscale y
set xlabel "requests in flight"
set ylabel "pages / s (log scale)"
set title "the sources alone, no VM (apfvm fetch)\n{/*0.8 $p1}"
plot "$dat/fetch" using 2:xtic(1) with linespoints lw 2 pt 7 title "tcp, no delay", \
     "" using 3:xtic(1) with linespoints lw 2 pt 5 title "tcp, 1 ms", \
     "" using 4:xtic(1) with linespoints lw 2 pt 9 title "tcp, 10 ms", \
     "" using 5:xtic(1) with linespoints lw 2 dt 2 pt 6 title "s3, no delay", \
     "" using 6:xtic(1) with linespoints lw 2 dt 2 pt 4 title "s3, 1 ms", \
     "" using 7:xtic(1) with linespoints lw 2 dt 2 pt 8 title "s3, 10 ms"
unset logscale y
set style data histograms
set style histogram clustered gap 1
set style fill solid 0.8 border -1
set boxwidth 0.9
set xlabel "async page fault mode"
set ylabel "compute rate / rate alone"
set yrange [0:1.2]
set key top right
set title "compute next to a scan served over the link\n{/*0.8 $p2}"
plot "$dat/modes" using 3:xtic(2) title "tcp, 1 ms", "" using 4 title "tcp, 10 ms", \
     "" using 5 title "s3, 1 ms", "" using 6 title "s3, 10 ms"
GP
echo "plot: $png"
