#!/bin/sh
L=${L:-4M}
r() { printf "%-6s %-5s exp=%s " "$1" "$2" "$3"; APFVM_EXP=$3 build/apfvm run --apf $1 --lazy $L --latency $2 --workload compute:1,scan:1 2>&1 | awk '/compute runtime/{c=$(NF-1); sub(/\(/,"",c)} /scan +runtime/{s=$5} /kvm /{k=$2} END{printf "compute %s scan %s exits %s\n", c, s, k}'; }
build/apfvm run --workload compute:1 2>&1 | grep "compute runtime"
for i in 1 2 3; do
  for lat in 1ms 10ms; do r kernel $lat 0; r user $lat 0; r user $lat 1; done
done
