# tests/load/throughput.gp - each path's throughput beside its limit, as
# measured in the same run (scripts/bench writes the data file).
#   gnuplot -e "data='throughput.dat'; out='throughput.png'; subtitle='...'" throughput.gp
# data: "label" service limit   (label carries the ratio; the batch row is in events/s)
set terminal pngcairo size 1200,640 noenhanced font ",10"
set output out
set title "EventTrack: each path beside its limit, measured in the same run\n" . subtitle
set style data histograms
set style histogram clustered gap 1
set style fill solid 0.85 border -1
set boxwidth 0.9
set logscale y
set yrange [10:*]
set ylabel "requests/s (events/s for the batch row), log scale"
set xtics scale 0 font ",9"
set grid ytics
set key top right
plot data using 2:xtic(1) title "service (wrk, 16 connections)" lc rgb "#1f77b4", \
     ''   using 3 title "limit (wrk /healthz, pgbench same SQL)" lc rgb "#bbbbbb"
