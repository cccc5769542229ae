#!/bin/bash
# Plots the CSV of `apfvm bench` with gnuplot: compute throughput (fraction
# of compute alone) and scan completion time against fetch latency, one
# line per mode, error bars from min to max.
# Usage: plot.sh CSV PNG [GUEST]   (GUEST: the guest's name for the title,
# default "the reference guest")
set -eu
csv=$1 png=$2 guest=${3:-the reference guest}
command -v gnuplot >/dev/null || { echo "plot.sh: gnuplot is missing (run 'make deps')" >&2; exit 1; }
# The platform the figures come from: the CSV's last, quoted column.
platform=$(awk -F'"' 'NR == 2 { print $2 }' "$csv")
dat=$(mktemp /tmp/apfvm-plot.XXXXXX)
trap 'rm -f "$dat"' EXIT
# One row per latency: label, then for off/kernel/user: compute med/min/max, scan med/min/max.
awk -F, 'NR > 1 {
	if (!($1 in idx)) { idx[$1] = n++; label[idx[$1]] = $1 }
	i = idx[$1]
	v[i, $3] = $5 " " $6 " " $7 " " $8 " " $9 " " $10
}
END {
	for (i = 0; i < n; i++) {
		line = i " " label[i]
		split("off kernel user", modes, " ")
		for (m = 1; m <= 3; m++)
			line = line " " ((i, modes[m]) in v ? v[i, modes[m]] : "NaN NaN NaN NaN NaN NaN")
		print line
	}
}' "$csv" >"$dat"
# A mode the CSV has no row for (kernel on arm64) gets no legend entry.
has_kernel=$(awk -F, 'NR > 1 && $3 == "kernel" { print "yes"; exit }' "$csv")
ktitle1='title "kernel (host kernel'"'"'s KVM)"' ktitle2='title "kernel"'
[ -n "$has_kernel" ] || ktitle1=notitle ktitle2=notitle
gnuplot <<GP
set terminal pngcairo size 1200,500 font "sans,11"
set output "$png"
set multiplot layout 1,2 title "apfvm: async page faults side by side (compute:1 next to a scan of the lazy region; guest: $guest)\nplatform: ${platform:-not recorded}"
set grid ytics
set key bottom right
set xlabel "fetch latency per page"
set xrange [-0.3:*]
set offsets 0, 0.3, 0, 0
set ylabel "compute rate / compute alone"
set yrange [0:1.05]
set title "throughput of the compute task"
plot "$dat" using (\$1-0.05):3:4:5:xtic(2) with yerrorlines lw 2 pt 7 title "off (synchronous)", \
     "" using 1:9:10:11 with yerrorlines lw 2 pt 5 $ktitle1, \
     "" using (\$1+0.05):15:16:17 with yerrorlines lw 2 pt 9 title "user (apfvm host side)"
set ylabel "scan completion time (s, log scale)"
set logscale y
set yrange [*:*]
set key top left
set title "completion time of the faulting task"
plot "$dat" using (\$1-0.05):6:7:8:xtic(2) with yerrorlines lw 2 pt 7 title "off", \
     "" using 1:12:13:14 with yerrorlines lw 2 pt 5 $ktitle2, \
     "" using (\$1+0.05):18:19:20 with yerrorlines lw 2 pt 9 title "user"
unset multiplot
GP
echo "plot: $png"
