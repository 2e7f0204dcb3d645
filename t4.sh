#!/bin/bash
V=$1; P=$2; N=$3; BIN=${BIN:-./broker}
$BIN $V $P 2>t4$V.log & BP=$!
sleep 0.5
./lg $P idle $N 30 10 >/dev/null 2>&1 & LP=$!
sleep 4
s=$(date +%s%N); kill -INT $BP; wait $BP; rc=$?; e=$(date +%s%N)
echo "variant=$V N=$N exit rc=$rc stop took $(( (e-s)/1000000 )) ms"
kill $LP; wait $LP 2>/dev/null
grep -E "stopped|ERROR|leak|SUMMARY" t4$V.log | head
