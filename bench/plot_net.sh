#!/bin/bash
# Plots make bench-net's two CSVs with gnuplot: the tcp: source's pages per
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
# Fetch: one row per in-flight count, a column per delay (0, 1, 10 ms).
awk -F, 'NR > 1 { v[$2, $1] = $3; k[$2] = 1 }
END { for (i in k) print i, v[i, 0], v[i, 1], v[i, 10] }' "$fetch" | sort -n >"$dat/fetch"
# Modes: one row per mode, columns: fraction at 1 ms, at 10 ms.
awk -F, 'NR > 1 { if (!($2 in idx)) { idx[$2] = n++; name[idx[$2]] = $2 } f[idx[$2], $1] = $4 }
END { for (i = 0; i < n; i++) print i, name[i], f[i, 1], f[i, 10] }' "$modes" >"$dat/modes"
gnuplot <<GP
set terminal pngcairo size 1300,500 font "sans,11"
set output "$png"
set multiplot layout 1,2 title "apfvm: memory from a page server over a veth link with netem delay"
set grid ytics
set key top left
set logscale y
set xlabel "requests in flight"
set ylabel "pages / s (log scale)"
set title "tcp: source, no VM (apfvm fetch)\n{/*0.8 $p1}"
plot "$dat/fetch" using 2:xtic(1) with linespoints lw 2 pt 7 title "no delay", \
     "" using 3:xtic(1) with linespoints lw 2 pt 5 title "1 ms", \
     "" using 4:xtic(1) with linespoints lw 2 pt 9 title "10 ms"
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
plot "$dat/modes" using 3:xtic(2) title "1 ms", "" using 4 title "10 ms"
GP
echo "plot: $png"
